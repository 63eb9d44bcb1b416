"""Showing received mail to agents and customers: which files, which images, which original.

The ingest pipeline stores a received mail as a ``mail_in`` stream entry whose ``body_html``
is already sanitised (``app.mail.content``), with its inline images (``FileKind.INLINE``) and
attachments on the entry and the raw message (``FileKind.MAIL_ORIGINAL``) on the
``InboundMail`` row only. This module is what the views ask:

* ``listed_files``: what the stream offers as files -- attachments only. Inline images are
  shown in place, never as a second copy to download or share; the original never appears.
* ``inline_image``: an inline image of a ticket, for the agent's or the customer's image
  route; a customer only gets images of external conversation entries of their own ticket.
* ``original_of``: the raw message behind an entry, for agents' "show original".
* Remote images: blocked until an agent asks, **per entry and remembered** in
  ``StreamEntry.data["remote_images_shown"]`` (``data["remote_images"]`` is the ingest's
  "this mail has remote images"). Remembering it on the entry means every agent and every
  later visit sees the images once one agent judged the mail safe; the page's
  Content-Security-Policy admits the image origins of exactly those entries, so the
  decision cannot be bypassed by the HTML. Asking is audited: loading them tells the sender
  that the mail was read. Customers never load remote images in the portal.

Functions here change the session and never commit; views commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask_babel import gettext as _
from sqlalchemy import select

from app import audit
from app.actor import Actor
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.mail.content import csp_origin, remote_image_urls, render_mail_html, split_quoted
from app.models.files import FileKind, VaultFile
from app.models.inbound import InboundMail
from app.models.tickets import EntryKind, StreamEntry, Ticket, Visibility

SHOWN_KEY = "remote_images_shown"
MAX_CSP_ORIGINS = 40  # a header has a size limit; more origins than this stay blocked


def is_mail(entry: StreamEntry) -> bool:
    return entry.kind == EntryKind.MAIL_IN.value


def listed_files(entry: StreamEntry) -> list[VaultFile]:
    """The files a stream entry offers: attachments, never inline images or an original."""
    return [f for f in entry.attachments if f.kind == FileKind.ATTACHMENT.value]


def remote_images_shown(entry: StreamEntry) -> bool:
    return bool((entry.data or {}).get(SHOWN_KEY))


def has_remote_images(entry: StreamEntry) -> bool:
    return bool(entry.body_html) and bool(remote_image_urls(entry.body_html))


def show_remote_images(entry: StreamEntry, actor: Actor) -> None:
    """Let this entry's remote images load from now on, for every agent; audited."""
    if not is_mail(entry) or not has_remote_images(entry):
        raise InvalidInput(_("This message has no remote images."))
    if remote_images_shown(entry):
        return
    entry.data = {**(entry.data or {}), SHOWN_KEY: True}  # a new dict: JSON change tracking
    # The ticket's version is left alone: the images need the page's policy, so the asking
    # agent's page reloads; other open pages show them on their next full load.
    audit.record(actor, "mail.remote_images", "entry", entry.id, ticket_id=entry.ticket_id)


def remote_origins(entries: Iterable[StreamEntry]) -> list[str]:
    """The image origins the page may load: those of entries whose images were asked for."""
    origins: list[str] = []
    for entry in entries:
        if not (is_mail(entry) and remote_images_shown(entry)):
            continue
        for url in remote_image_urls(entry.body_html):
            origin = csp_origin(url)
            if origin and origin not in origins and len(origins) < MAX_CSP_ORIGINS:
                origins.append(origin)
    return origins


def body_html(
    entry: StreamEntry,
    *,
    inline_url: Callable[[str], str],
    remote_allowed: bool,
    quoted_summary: str,
) -> str | None:
    """The entry's HTML ready to show, or None to show its text instead.

    Only images stored for this very entry resolve (``inline_url`` gets their public id);
    a marker naming any other file shows nothing.
    """
    if not entry.body_html:
        return None
    own = {f.public_id for f in entry.attachments if f.kind == FileKind.INLINE.value}
    return render_mail_html(
        entry.body_html,
        inline_url=lambda public_id: inline_url(public_id) if public_id in own else None,
        remote_allowed=remote_allowed and remote_images_shown(entry),
        quoted_summary=quoted_summary,
    )


def text_parts(entry: StreamEntry) -> tuple[str, str]:
    """(new text, folded history) of a received mail; other entries are all new text."""
    if not is_mail(entry):
        return entry.body_text or "", ""
    return split_quoted(entry.body_text or "")


def inline_image(ticket: Ticket, public_id: str, *, public_only: bool) -> VaultFile:
    """An inline image of ``ticket``; ``public_only`` for customers (external mail entries).

    Anything else -- another ticket's image, an attachment, an original, an internal entry's
    image for a customer, an erased file -- is as absent as a made-up id.
    """
    query = (
        select(VaultFile)
        .join(StreamEntry, VaultFile.entry_id == StreamEntry.id)
        .where(
            VaultFile.public_id == public_id,
            VaultFile.kind == FileKind.INLINE.value,
            VaultFile.erased_at.is_(None),
            VaultFile.mime_type.startswith("image/"),
            StreamEntry.ticket_id == ticket.id,
        )
    )
    if public_only:
        query = query.where(StreamEntry.visibility == Visibility.EXTERNAL.value)
    file = db.session.scalar(query)
    if file is None:
        raise NotFound(_("There is no such image on this ticket."))
    return file


def mail_entry(ticket: Ticket, entry_id: int) -> StreamEntry:
    entry = db.session.scalar(
        select(StreamEntry).where(
            StreamEntry.id == entry_id,
            StreamEntry.ticket_id == ticket.id,
            StreamEntry.kind == EntryKind.MAIL_IN.value,
        )
    )
    if entry is None:
        raise NotFound(_("There is no such mail on this ticket."))
    return entry


def original_of(entry: StreamEntry) -> VaultFile:
    """The raw message an entry was filed from (agents only; the portal never offers it)."""
    file = db.session.scalar(
        select(VaultFile)
        .join(InboundMail, InboundMail.raw_file_id == VaultFile.id)
        .where(
            InboundMail.entry_id == entry.id,
            VaultFile.kind == FileKind.MAIL_ORIGINAL.value,
            VaultFile.erased_at.is_(None),
        )
        .order_by(InboundMail.id)
        .limit(1)
    )
    if file is None:
        raise NotFound(_("The original of this message is not kept."))
    return file


def entries_with_original(ticket: Ticket) -> set[int]:
    """Ids of the ticket's entries whose raw message is kept (one query for the page)."""
    return set(
        db.session.scalars(
            select(InboundMail.entry_id)
            .join(VaultFile, InboundMail.raw_file_id == VaultFile.id)
            .join(StreamEntry, InboundMail.entry_id == StreamEntry.id)
            .where(
                StreamEntry.ticket_id == ticket.id,
                VaultFile.kind == FileKind.MAIL_ORIGINAL.value,
                VaultFile.erased_at.is_(None),
            )
        )
    )
