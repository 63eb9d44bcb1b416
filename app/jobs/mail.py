"""Jobs on the ``mail`` queue: everything the desk mails goes out from here, never from a
request, so pages never wait on a mail server and a refused send is retried."""

from __future__ import annotations

from rq import Retry

from app.accounts import emailed_links
from app.extensions import db
from app.files import recipients
from app.files.vault_links import Client
from app.jobs import job

# A sign-in link is worth sending for minutes, an invitation for days: the schedule covers
# a mail server that restarts or greylists, not one that is down for the day.
LINK_RETRY = Retry(max=4, interval=[10, 30, 120, 300])


@job("mail", retry=LINK_RETRY, timeout=60)
def send_requested_link(kind: str, email: str, client_address: str | None) -> str:
    """A sign-in or reset link a visitor asked for (or only the audit row, see the domain)."""
    if emailed_links.MailRequest(kind) is emailed_links.MailRequest.SIGN_IN:
        outcome = emailed_links.deliver_sign_in_link(email, client_address)
    else:
        outcome = emailed_links.deliver_password_reset(email, client_address)
    db.session.commit()
    return outcome


@job("mail", retry=LINK_RETRY, timeout=60)
def send_invitation(user_id: int, inviter: str | None, ticket_id: int | None) -> str:
    """A portal invitation an agent sent; a final failure is noted on the ticket."""
    outcome = emailed_links.deliver_invitation(user_id, inviter, ticket_id)
    db.session.commit()
    return outcome


# A code lives ten minutes: retrying past a few minutes would mail a code nobody waits for.
CODE_RETRY = Retry(max=3, interval=[5, 20, 60])


@job("mail", retry=CODE_RETRY, timeout=60)
def send_link_code(
    link_id: str, browser: str, client_address: str | None, user_agent: str | None
) -> str:
    """A one-time code for a recipient-bound file link, to the link's recipient only."""
    outcome = recipients.deliver_code(link_id, browser, Client(client_address, user_agent))
    db.session.commit()
    return outcome


@job("mail", retry=LINK_RETRY, timeout=60)
def send_autoresponse(ticket_id: int) -> str:
    """The acknowledgement for a ticket opened by mail; today: noted as not configured.

    Enqueued by mail-in for new tickets from people (never for robots). Autoresponse
    templates and sending come with the mail-out issue; until then the job records on the
    ticket, once, for agents, that no acknowledgement went out.
    """
    from app.mail.autoresponse import note_not_configured

    outcome = note_not_configured(ticket_id)
    db.session.commit()
    return outcome
