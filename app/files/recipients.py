"""One-time codes that let a visitor prove to be the recipient a link is bound to.

Who counts as the recipient is decided in ``vault_links.recipient_proof``: a signed-in
customer with that address, or a browser that confirmed a code mailed to that address.
This module is the code half:

- A visitor asks for a code (``request_code``). The request only queues a job on the
  ``mail`` queue, after the commit, so the page never waits on the mail server. The code
  always goes to the link's ``recipient_email``; no visitor can name another address.
- The job (``deliver_code``) draws 6 random digits, keeps only their HMAC in Redis for
  ten minutes, keyed by link and by the browser that asked, renders the mail in the
  recipient's language and sends it. Its audit row (``challenged``/``code_sent``) lands
  in the job's transaction. The plain code exists only in that mail: not in the request,
  not in the job's arguments, not in the database.
- The visitor types the code (``confirm_code``) in the browser that asked. It is compared
  in constant time; each code takes ``CODE_TRIES`` attempts at most, and every wrong one
  also counts against the visitor's guess budget for the link (``link_limits``). A right
  code is spent at once and leaves a signed, hour-long proof for this link in that
  browser's session, which ``start_download`` requires.

Binding a code to the browser that asked means a stranger who asks for codes, or types
wrong ones, only ever spends their own: the recipient's code, in the recipient's browser,
keeps working. What a stranger can do is use up the mails a link may cause per hour
(``CODES_PER_LINK``, which protects the recipient's inbox); the recipient can still sign
in to the portal, or ask again later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from flask import current_app
from limits import parse_many

from app.accounts.signin import find_user
from app.extensions import db, redis_client
from app.files import link_limits
from app.files.vault_links import (
    Client,
    VaultLinkRefused,
    Visitor,
    check_usable,
    proof_token,
    record,
)
from app.jobs import is_last_try
from app.mail import system_mail
from app.mail.sending import MailNotSent, send_mail
from app.models.files import DownloadOutcome, VaultLink, VaultLinkState
from app.models.types import utcnow

log = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_SECONDS = 10 * 60
CODE_TRIES = 5
CODES_PER_LINK = "5 per hour"  # mails one link may cause, whoever asks
CODES_PER_CLIENT = "3 per hour"  # mails one client network may cause per link


def _key(link_id: str, browser: str) -> str:
    return f"vaultdesk:link-code:{link_id}:{browser}"


def _digest(link_id: str, browser: str, code: str) -> str:
    """Keyed with the app secret: a 6-digit code hashed plainly is undone in a millisecond."""
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    message = f"{link_id}.{browser}.{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _refuse(
    link: VaultLink, client: Client, reason: str, message: str, status: int = 403
) -> VaultLinkRefused:
    record(link, link.file, DownloadOutcome.REFUSED, client, reason=reason)
    return VaultLinkRefused("code", message, status=status)


NO_CODE = "There is no valid code for this browser. Ask for a new one."


def _bound(link: VaultLink, visitor: Visitor) -> None:
    """Codes only for links that are usable now and bound to a recipient."""
    check_usable(link, visitor.client)
    if link.recipient_email is None:
        raise VaultLinkRefused("code", "This link is not bound to a recipient.", status=400)


def request_code(link: VaultLink, visitor: Visitor) -> None:
    """Queue a code to the link's recipient for this browser (see the module docstring)."""
    _bound(link, visitor)
    if not visitor.browser:
        raise ValueError("the view gives the browser an id before asking for a code")
    browser, client = visitor.browser, visitor.client
    per_client = ("link-code-client", link.id, link_limits.client_key(client.address))
    try:
        allowed = link_limits.take(parse_many(CODES_PER_CLIENT), *per_client)
        if allowed and not link_limits.take(parse_many(CODES_PER_LINK), "link-code", link.id):
            link_limits.give_back(parse_many(CODES_PER_CLIENT), *per_client)
            allowed = False
    except link_limits.LimitsUnavailable:
        raise _refuse(
            link, client, "limits_unavailable", "No code can be sent now. Try again shortly.", 503
        ) from None
    if not allowed:
        raise _refuse(
            link,
            client,
            "code_limit",
            "Too many codes were sent for this link in the last hour. Try again later, "
            "or sign in to the portal.",
            status=429,
        )
    from app.jobs import enqueue_after_commit
    from app.jobs.mail import send_link_code

    enqueue_after_commit(send_link_code, args=(link.id, browser, client.address, client.user_agent))


def deliver_code(link_id: str, browser: str, client: Client) -> str:
    """The job's half: draw a code, keep its HMAC, mail it to the recipient, audit it."""
    link = db.session.get(VaultLink, link_id)
    if link is None or link.recipient_email is None:
        return "no such link"
    state = link.state(utcnow())
    if state is not VaultLinkState.ACTIVE:  # revoked, expired ... since the request
        record(link, link.file, DownloadOutcome.REFUSED, client, reason=state.value)
        return state.value
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    key = _key(link.id, browser)
    pipe = redis_client.connection.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"digest": _digest(link.id, browser, code), "tries": 0})
    pipe.expire(key, CODE_SECONDS)
    pipe.execute()
    try:
        _mail(link, code)
    except MailNotSent as exc:
        if not is_last_try():
            raise
        log.warning("code mail for link %s not sent: %s", link.id, exc.message)
        record(link, link.file, DownloadOutcome.CHALLENGED, client, reason="code_not_sent")
        return "mail failed"
    record(link, link.file, DownloadOutcome.CHALLENGED, client, reason="code_sent")
    return "sent"


def _mail(link: VaultLink, code: str) -> None:
    """The ``link_code`` system mail, in the recipient's language if we know it.

    Sent straight, not through the outbox: the code must exist only in this mail.
    """
    address = link.recipient_email or ""
    user = find_user(address)
    identity = system_mail.default_identity()
    rendered = system_mail.render(
        system_mail.Kind.LINK_CODE,
        identity,
        user.language if user is not None and user.language else "en",
        {
            "code": code,
            "file_name": link.file.display_name,
            "minutes": CODE_SECONDS // 60,
            "identity_name": identity.name if identity is not None else "Vaultdesk",
        },
    )
    send_mail(address, rendered.subject, rendered.text, html=rendered.html)


def confirm_code(link: VaultLink, visitor: Visitor, code: str) -> str:
    """Check a typed code; return the proof for this browser's session, or refuse.

    Every attempt is counted against the visitor's guess budget first and given back
    only when the code was right; the code's own try counter is raised atomically
    before the comparison, so parallel attempts cannot share one try.
    """
    _bound(link, visitor)
    client = visitor.client
    if not visitor.browser:  # this browser never asked for a code
        raise _refuse(link, client, "no_code", NO_CODE)
    browser = visitor.browser
    try:
        allowed = link_limits.take_guess(link.id, client.address)
    except link_limits.LimitsUnavailable:
        raise _refuse(
            link, client, "limits_unavailable", "Codes cannot be checked right now.", 503
        ) from None
    if not allowed:
        raise _refuse(
            link,
            client,
            "rate_limited",
            "Too many wrong attempts for this link from your network. Wait a while, "
            "then try again.",
            status=429,
        )
    redis = redis_client.connection
    key = _key(link.id, browser)
    stored = redis.hget(key, "digest")
    if stored is None:
        link_limits.give_back_guess(link.id, client.address)  # nothing there to guess
        raise _refuse(link, client, "no_code", NO_CODE)
    tries = int(redis.hincrby(key, "tries", 1))
    if tries > CODE_TRIES:
        redis.delete(key)
        link_limits.give_back_guess(link.id, client.address)
        raise _refuse(
            link, client, "code_spent", "This code was tried too often. Ask for a new one."
        )
    typed = "".join(code.split())
    if not (
        len(typed) == CODE_DIGITS
        and typed.isascii()
        and typed.isdigit()
        and hmac.compare_digest(_digest(link.id, browser, typed), stored.decode())
    ):
        if tries >= CODE_TRIES:
            redis.delete(key)
        raise _refuse(link, client, "wrong_code", "That code is not right.")
    redis.delete(key)  # spent: a code works once
    link_limits.give_back_guess(link.id, client.address)
    record(link, link.file, DownloadOutcome.VERIFIED, client, reason="code")
    return proof_token(link, browser)
