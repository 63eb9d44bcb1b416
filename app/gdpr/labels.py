"""What request types, statuses and deadline urgencies are called, in the reader's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.models.gdpr import GdprRequestKind, GdprRequestStatus

KIND_LABELS = {
    GdprRequestKind.ACCESS.value: _l("Access / export (Art. 15, 20)"),
    GdprRequestKind.ERASURE.value: _l("Erasure (Art. 17)"),
    GdprRequestKind.RECTIFICATION.value: _l("Rectification (Art. 16)"),
    GdprRequestKind.RESTRICTION.value: _l("Restriction (Art. 18)"),
    GdprRequestKind.OBJECTION.value: _l("Objection (Art. 21)"),
}
STATUS_LABELS = {
    GdprRequestStatus.RECEIVED.value: _l("Received"),
    GdprRequestStatus.VERIFYING.value: _l("Verifying identity"),
    GdprRequestStatus.IN_PROGRESS.value: _l("In progress"),
    GdprRequestStatus.DONE.value: _l("Done"),
    GdprRequestStatus.REFUSED.value: _l("Refused"),
}
URGENCY_LABELS = {
    "overdue": _l("Overdue"),
    "soon": _l("Due within 7 days"),
    "fine": _l("On time"),
    "closed": _l("Closed"),
}
