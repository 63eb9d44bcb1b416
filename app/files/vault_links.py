"""Signed links to vault files: issue, check, count, revoke, and the download audit.

A link is a database row (expiry, limit, recipient, password, revocation) named by a random
id; the URL carries that id signed with the app's secret (``vault.LinkSigner``). Fetching
is two steps so that mail scanners which open every link do not use up a one-time link:
a GET shows a landing page, a POST counts the download (one atomic UPDATE) and hands out a
short-lived *grant*, a second signed token that the actual download and all its Range
requests reuse. Every request re-reads the link row, and a response that is streaming
re-reads it at least every second or few MiB (``app.files.serving``), so a revocation,
expiry or erasure also ends a download that is already running.

A link with a ``recipient_email`` is bound to that address, and that is enforced before
any download is counted: the visitor must be signed in with a customer account of exactly
that address, or have proved in this browser, with a one-time code mailed to that address,
that they read its mail (``app.files.recipients``). Anyone else sees whom the file is for
(masked) and can have a code mailed there, never to an address they type. Staff download
through the ticket page and are not asked. Password and code guesses are budgeted per link
and client network (``app.files.link_limits``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app import audit
from app.actor import Actor
from app.audit import truncate_address
from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.files import link_limits
from app.mail.addresses import normalise_address
from app.models.files import (
    DownloadEvent,
    DownloadOutcome,
    FileKind,
    VaultFile,
    VaultLink,
    VaultLinkState,
)
from app.models.people import Contact, Role, User
from app.models.tickets import Ticket
from app.models.types import utcnow
from app.urls import public_url
from vault import BadLinkToken, LinkSigner, new_link_id

GRANT_SECONDS = 6 * 3600  # long enough to resume a big download over a slow line
PROOF_SECONDS = 3600  # a right code opens the link in that browser for an hour
MAX_DAYS = 365


class VaultLinkNotFound(DomainError):
    """The token does not verify or names no link: say nothing about any file."""

    status = 404


class VaultLinkRefused(DomainError):
    """The link exists but cannot be used now; ``state`` says why (shown to the visitor)."""

    status = 410

    def __init__(self, state: VaultLinkState | str, message: str, status: int = 410) -> None:
        super().__init__(message)
        self.state = state
        self.status = status


REFUSALS = {
    VaultLinkState.REVOKED: "This link was revoked by the sender.",
    VaultLinkState.EXPIRED: "This link has expired.",
    VaultLinkState.EXHAUSTED: "This link has been used as often as it allows.",
    VaultLinkState.ERASED: "The file behind this link was erased.",
}


@dataclass(frozen=True)
class Client:
    """What the download audit keeps of the person or program asking."""

    address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Visitor:
    """Everything a request knows about who asks for a link, as plain values.

    ``browser`` is a random id kept in this browser's session (made when it first asks
    for a code); ``proof`` is what a right code left in that session for this link.
    """

    client: Client
    user: User | None = None
    browser: str | None = None
    proof: str | None = None


def mask_address(address: str) -> str:
    """``nora@example.test`` as ``n***@example.test``: enough to recognise, not to harvest."""
    local, _at, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def proof_token(link: VaultLink, browser: str) -> str:
    """What a right code leaves in the browser's session: signed, for this link and browser."""
    return _signer("recipient").sign(f"{link.id}.{browser}")[1]


def recipient_proof(link: VaultLink, visitor: Visitor) -> str | None:
    """How ``visitor`` proved to be the link's recipient (``signed_in``/``code``), or None.

    A signed-in customer whose account address is the recipient address passes: portal
    accounts are made by staff for a contact's address and activated from a mail to it, so
    that address is proven. Staff accounts do not count; staff use the ticket page.
    """
    if link.recipient_email is None:
        return None
    user = visitor.user
    if (
        user is not None
        and user.active
        and user.has_role(Role.CUSTOMER)
        and user.email.strip().lower() == link.recipient_email
    ):
        return "signed_in"
    if visitor.browser and visitor.proof:
        try:
            value = _signer("recipient").verify(visitor.proof, max_age=PROOF_SECONDS)
        except BadLinkToken:
            return None
        if value == f"{link.id}.{visitor.browser}":
            return "code"
    return None


def _signer(purpose: str) -> LinkSigner:
    return LinkSigner(current_app.config["SECRET_KEY"], salt=f"vaultdesk.{purpose}")


def token_for(link: VaultLink) -> str:
    return _signer("link").sign(link.id)[1]


def link_url(link: VaultLink) -> str:
    """The absolute URL to put in a mail or copy to a customer (also from jobs)."""
    return public_url("links.landing", token=token_for(link))


def issue_link(
    file: VaultFile,
    actor: Actor,
    *,
    days: int | None = None,
    max_downloads: int | None = None,
    recipient_email: str | None = None,
    contact: Contact | None = None,
    password: str | None = None,
) -> VaultLink:
    """Make a link for ``file``; the one call the mail pipeline uses for every attachment."""
    if file.erased_at is not None:
        raise InvalidInput(_("The file was erased; no link can be made for it."))
    if file.kind != FileKind.ATTACHMENT.value:
        # A mail's original holds headers and addresses meant for agents only; an inline
        # image is part of a message, not a file of its own to hand out.
        raise InvalidInput(_("Only attachments can be shared by link."))
    days = current_app.config["LINK_DAYS"] if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(_("A link lives between 1 and %(n)d days.", n=MAX_DAYS))
    if max_downloads is not None and max_downloads < 1:
        raise InvalidInput(_("The download limit must be at least 1, or empty for no limit."))
    recipient = normalise_address(recipient_email) if (recipient_email or "").strip() else None
    if contact is None and file.ticket is not None and recipient is not None:
        contact = (
            file.ticket.contact
            if file.ticket.contact and (file.ticket.contact.email.lower() == recipient)
            else None
        )
    link = VaultLink(
        id=new_link_id(),
        file=file,
        ticket_id=file.ticket_id,
        contact=contact,
        recipient_email=recipient,
        issued_by_id=actor.user_id,
        expires_at=utcnow() + timedelta(days=days),
        max_downloads=max_downloads,
        download_count=0,
        password_hash=generate_password_hash(password, method="scrypt") if password else None,
    )
    db.session.add(link)
    db.session.flush()
    audit.record(
        actor,
        "link.issue",
        "link",
        link.id,
        ticket_id=file.ticket_id,
        file=file.public_id,
        days=days,
        max_downloads=max_downloads,
        recipient=recipient,
        password=bool(password),
    )
    return link


def resolve(token: str) -> VaultLink:
    """The link a token names, whatever its state; ``VaultLinkNotFound`` when it names none."""
    try:
        link_id = _signer("link").verify(token)
    except BadLinkToken:
        raise VaultLinkNotFound("This link is not valid.") from None
    link = db.session.get(VaultLink, link_id)
    if link is None:
        raise VaultLinkNotFound("This link is not valid.")
    return link


def record(
    link: VaultLink | None,
    file: VaultFile | None,
    outcome: DownloadOutcome,
    client: Client,
    *,
    reason: str | None = None,
    byte_range: str | None = None,
    user_id: int | None = None,
) -> DownloadEvent:
    """Add one row to the download audit (the caller commits, with whatever it records)."""
    event = DownloadEvent(
        link_id=link.id if link else None,
        file_id=file.id if file else None,
        user_id=user_id,
        outcome=outcome.value,
        reason=reason,
        byte_range=byte_range,
        client_address=truncate_address(client.address),
        user_agent=(client.user_agent or "")[:200] or None,
    )
    db.session.add(event)
    return event


def check_usable(
    link: VaultLink, client: Client, now: datetime | None = None, *, granted: bool = False
) -> None:
    """Raise ``VaultLinkRefused`` (and audit it) unless the link can be used right now.

    ``granted``: the request carries a grant, i.e. its download was counted already, so
    reaching the limit does not stop it; revocation, expiry and erasure still do.
    """
    state = link.state(now or utcnow())
    if granted and state is VaultLinkState.EXHAUSTED:
        return
    if state is not VaultLinkState.ACTIVE:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason=state.value)
        raise VaultLinkRefused(state, REFUSALS[state])


def _check_password(link: VaultLink, password: str | None, client: Client) -> None:
    """A password guess, counted before it is checked and given back when it was right."""
    try:
        allowed = link_limits.take_guess(link.id, client.address)
    except link_limits.LimitsUnavailable:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="limits_unavailable")
        raise VaultLinkRefused(
            "unavailable", "Passwords cannot be checked right now. Try again shortly.", 503
        ) from None
    if not allowed:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="rate_limited")
        raise VaultLinkRefused(
            "limit",
            "Too many wrong attempts for this link from your network. Wait a while, "
            "then try again.",
            status=429,
        )
    if not check_password_hash(link.password_hash or "", password or ""):
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="wrong_password")
        raise VaultLinkRefused("password", "The password is not right.", status=403)
    link_limits.give_back_guess(link.id, client.address)


def start_download(link: VaultLink, password: str | None, visitor: Visitor) -> str:
    """Check recipient and password, count one download atomically, return a grant token.

    The recipient comes first: a visitor who has not proved the address learns nothing,
    not even whether a password would be right, and spends nobody's budget. The count is
    one UPDATE whose WHERE holds every condition, so twenty parallel requests on a
    one-time link give exactly one grant, on SQLite and PostgreSQL alike.
    """
    client = visitor.client
    check_usable(link, client)
    proven = recipient_proof(link, visitor)
    if link.recipient_email is not None and proven is None:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="recipient_required")
        raise VaultLinkRefused(
            "recipient",
            f"This file is only for {mask_address(link.recipient_email)}. "
            "Confirm a code mailed to that address first.",
            status=403,
        )
    if link.password_hash:
        _check_password(link, password, client)
    now = utcnow()
    counted = db.session.execute(
        update(VaultLink)
        .where(VaultLink.id == link.id, VaultLink.state(now) == VaultLinkState.ACTIVE.value)
        .values(download_count=VaultLink.download_count + 1)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:
        db.session.expire(link)
        check_usable(link, client, now)  # tells which limit was hit, and audits it
        raise VaultLinkRefused(VaultLinkState.EXHAUSTED, REFUSALS[VaultLinkState.EXHAUSTED])
    record(
        link,
        link.file,
        DownloadOutcome.GRANTED,
        client,
        reason=f"recipient_{proven}" if proven else None,
        user_id=visitor.user.id if proven == "signed_in" and visitor.user else None,
    )
    return _signer("grant").sign(f"{link.id}.{secrets.token_urlsafe(8)}")[1]


def check_grant(link: VaultLink, grant: str, client: Client) -> None:
    """A grant must be ours, recent, for this link, and the link still usable."""
    try:
        value = _signer("grant").verify(grant, max_age=GRANT_SECONDS)
    except BadLinkToken:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="bad_grant")
        raise VaultLinkRefused(
            "grant", "This download has timed out. Open the link again.", status=403
        ) from None
    if value.rpartition(".")[0] != link.id:
        record(link, link.file, DownloadOutcome.REFUSED, client, reason="bad_grant")
        raise VaultLinkRefused("grant", "This download does not belong to this link.", status=403)
    check_usable(link, client, granted=True)


def _revoke(links: list[VaultLink], actor: Actor, reason: str) -> list[str]:
    """Revoke the links not revoked yet; return their ids (for the audit row)."""
    now = utcnow()
    revoked = []
    for link in links:
        if link.revoked_at is None:
            link.revoked_at, link.revoked_by_id, link.revoke_reason = now, actor.user_id, reason
            revoked.append(link.id)
    return revoked


def _reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput(_("Say why the link is revoked; the reason goes into the audit log."))
    return reason[:500]


def unrevoked_links() -> Select[tuple[VaultLink]]:
    """Links not revoked yet, expired ones included: revoking those too is harmless and
    makes the record say what the officer meant ("nothing of this customer's is live")."""
    return select(VaultLink).where(VaultLink.revoked_at.is_(None))


def revoke_link(link: VaultLink, actor: Actor, reason: str) -> int:
    reason = _reason(reason)
    if not _revoke([link], actor, reason):
        return 0  # revoked before: the existing record stands, no second reason is written
    audit.record(actor, "link.revoke", "link", link.id, ticket_id=link.ticket_id, reason=reason)
    return 1


def revoke_ticket_links(ticket: Ticket, actor: Actor, reason: str) -> int:
    reason = _reason(reason)
    links = list(db.session.scalars(unrevoked_links().where(VaultLink.ticket_id == ticket.id)))
    revoked = _revoke(links, actor, reason)
    audit.record(
        actor,
        "link.revoke_ticket",
        "ticket",
        ticket.number,
        ticket_id=ticket.id,
        reason=reason,
        count=len(revoked),
        links=_listed(revoked),
    )
    return len(revoked)


def revoke_customer_links(
    actor: Actor, reason: str, *, contact: Contact | None = None, email: str | None = None
) -> int:
    """Every link made for a customer: by contact, by the address it was sent to, or both."""
    reason = _reason(reason)
    email = email.strip().lower() if email else None
    conditions = []
    if contact is not None:
        conditions.append(VaultLink.contact_id == contact.id)
        conditions.append(VaultLink.recipient_email == contact.email.lower())
    if email:
        conditions.append(VaultLink.recipient_email == email)
    if not conditions:
        raise InvalidInput(_("Name a customer or an address."))
    links = list(db.session.scalars(unrevoked_links().where(or_(*conditions))))
    revoked = _revoke(links, actor, reason)
    audit.record(
        actor,
        "link.revoke_customer",
        "contact",
        contact.id if contact else email,
        reason=reason,
        count=len(revoked),
        links=_listed(revoked),
        email=email or (contact.email if contact else None),
    )
    return len(revoked)


def revoke_all(actor: Actor, reason: str) -> int:
    """The emergency switch: every link that is not revoked yet, at once."""
    reason = _reason(reason)
    now = utcnow()
    revoked = list(
        db.session.scalars(
            update(VaultLink)
            .where(VaultLink.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by_id=actor.user_id, revoke_reason=reason)
            .returning(VaultLink.id),
            execution_options={"synchronize_session": "fetch"},
        )
    )
    audit.record(
        actor,
        "link.revoke_all",
        "link",
        None,
        reason=reason,
        count=len(revoked),
        links=_listed(revoked),
    )
    return len(revoked)


AUDIT_LIST_LIMIT = 1000


def _listed(ids: list[str]) -> list[str]:
    """Which links an action revoked, for the audit row; capped so one row stays small
    (the links themselves carry who revoked them, when and why)."""
    return ids[:AUDIT_LIST_LIMIT]
