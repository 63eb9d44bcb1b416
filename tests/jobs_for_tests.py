"""Job functions the worker tests enqueue; RQ needs them importable by name."""

from __future__ import annotations

from app.extensions import db
from app.jobs import job
from app.models.people import Team


@job("default")
def create_team(name: str) -> int:
    """Runs inside the worker's app context and writes through its own DB connection."""
    team = Team(name=name)
    db.session.add(team)
    db.session.commit()
    return team.id
