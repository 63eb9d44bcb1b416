"""Agent notifications: who on staff is told about what, in the app and by mail.

The domain calls ``notify(kind, ticket, actor, ...)`` where an event happens (one line:
ticket creation, assignment, a customer writing, an internal note, the relay giving up on
a reply, the periodic task sweep). This package decides who is concerned, drops the
actor (nobody is ever told about their own action), asks each person's preferences, and
writes an in-app ``Notification`` and/or a mail through the relay. Like the rest of the
domain it never commits; the caller's commit makes the event and its notifications land
together.
"""

from app.models.notifications import NotificationKind
from app.notifications.core import batch, notify, reply_failed
from app.notifications.due import tasks_due

__all__ = ["NotificationKind", "batch", "notify", "reply_failed", "tasks_due"]
