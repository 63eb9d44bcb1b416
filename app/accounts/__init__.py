"""People and their accounts: creating users, signing in, their own profile, emailed links.

- ``people``: creating and changing users (CLI, admin screens, demo data).
- ``signin``: checking credentials and recording sign-ins, whatever the door.
- ``profile``: what people change about their own account.
- ``emailed_links``: sign-in, reset and invitation links mailed to portal customers.

File download links (``app.files.vault_links``) and links between tickets
(``app.tickets.changes.link_tickets``) are other things that share the word.
"""
