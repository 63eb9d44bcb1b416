"""Files in the help desk: the app's side of the vault.

``store`` puts uploads into the vault and erases them, ``links`` issues, checks and revokes
signed links and keeps the download audit, ``serving`` turns a file into an HTTP response
(ranges included), ``names`` makes outside file names safe to show, ``queries`` reads
links and events for the compliance screens. ``vault/`` itself never imports any of this.
"""
