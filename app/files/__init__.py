"""Files in the help desk: the app's side of the vault.

``store`` puts uploads into the vault and erases them, ``vault_links`` issues, checks and
revokes signed links and keeps the download audit, ``recipients`` mails and checks the
one-time codes of recipient-bound links, ``link_limits`` budgets password and code guesses,
``serving`` turns a file into an HTTP response (ranges included) and stops it when its link
dies, ``names`` makes outside file names safe to show, ``queries`` reads links and events
for the compliance screens. ``vault/`` itself never imports any of this.
"""
