"""Jobs on the ``ai`` queue: classifying tickets with the company's own model.

Mail-in enqueues ``classify_ticket`` after every customer mail is committed. The model
endpoint and the classifier come with the AI issue; until then the job runs for real,
finds nothing configured and says so in the worker log, so the pipeline (enqueue after
commit, queue, worker) is exercised end to end and nothing pretends to have classified.
"""

from __future__ import annotations

import logging

from rq import Retry

from app.extensions import db
from app.jobs import job
from app.models.tickets import Ticket

log = logging.getLogger(__name__)

NOT_CONFIGURED = "not configured"


@job("ai", retry=Retry(max=2, interval=[30, 120]), timeout=120)
def classify_ticket(ticket_id: int) -> str:
    """Classify a ticket; today: record that no model endpoint is configured."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        log.info("classify_ticket: ticket %s no longer exists", ticket_id)
        return "gone"
    log.info(
        "classify_ticket %s: no model endpoint is configured; nothing classified", ticket.number
    )
    db.session.rollback()
    return NOT_CONFIGURED
