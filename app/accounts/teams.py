"""Teams: create, rename, delete, members and leads.

What a team lead is (decided here, documented in the README): a member of the team who
holds the Supervisor role. That is what the desk already acts on: a new ticket of a team
notifies its agents and supervisors, and SLA escalations go to a person's supervisor
(``User.supervisor_id``). So no separate "lead" column exists:

- Marking a member as lead grants them the Supervisor role; unmarking takes it away
  (a user belongs to one team, so their supervisor role is their lead role).
- Every member who is not a lead has ``supervisor_id`` set to the team's first lead by
  name (``sync_supervisors``), so escalations reach a lead; without a lead it is cleared.
  Leads keep whatever supervisor they had (their own manager, set elsewhere).
- Deleting a team leaves its members without a team (and without a supervisor from it);
  tickets of the team keep their history but no longer name a team.

Every function writes its audit row into the session; the view commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
from app.actor import Actor
from app.errors import Conflict, InvalidInput
from app.extensions import db
from app.models.people import Role, Team, User

NAME_LIMIT = 120


def list_teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(func.lower(Team.name))))


def leads_of(team: Team) -> list[User]:
    return [m for m in team.members if m.has_role(Role.SUPERVISOR)]


def _name(name: str, team: Team | None) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LIMIT:
        raise InvalidInput(_("A team needs a name (up to 120 characters)."))
    clash = db.session.scalar(select(Team).where(func.lower(Team.name) == cleaned.lower()))
    if clash is not None and clash is not team:
        raise Conflict(_("There is a team called %(name)s already.", name=cleaned))
    return cleaned


def _email(email: str) -> str | None:
    from app.mail.addresses import normalise_address

    if not email.strip():
        return None
    try:
        return normalise_address(email)
    except (InvalidInput, ValueError):
        raise InvalidInput(_("“%(value)s” is not an email address.", value=email[:80])) from None


def create_team(actor: Actor, name: str, email: str = "") -> Team:
    team = Team(name=_name(name, None), email=_email(email))
    db.session.add(team)
    db.session.flush()
    audit.record(actor, "team.create", "team", team.id, name=team.name)
    return team


def rename_team(actor: Actor, team: Team, name: str, email: str = "") -> bool:
    new_name, new_email = _name(name, team), _email(email)
    if (new_name, new_email) == (team.name, team.email):
        return False
    before = team.name
    team.name, team.email = new_name, new_email
    audit.record(actor, "team.rename", "team", team.id, before=before, after=new_name)
    return True


def delete_team(actor: Actor, team: Team) -> None:
    members = list(team.members)
    for member in members:
        if member.supervisor_id is not None and member.supervisor in leads_of(team):
            member.supervisor_id = None
        member.team = None
    audit.record(
        actor, "team.delete", "team", team.id, name=team.name, members=[m.id for m in members]
    )
    db.session.delete(team)
    db.session.flush()


def set_members(
    actor: Actor, team: Team, member_ids: Iterable[int], lead_ids: Iterable[int]
) -> None:
    """Make the team exactly these staff members and leads (leads are members too).

    A person moved in from another team leaves that one (one team per person). Leads are
    granted Supervisor; members no longer leads lose it (see the module doc).
    """
    leads = set(lead_ids)
    wanted = set(member_ids) | leads  # a lead is a member, ticked or not
    people = list(db.session.scalars(select(User).where(User.id.in_(wanted)))) if wanted else []
    if len(people) != len(wanted) or not all(p.is_staff for p in people):
        raise InvalidInput(_("Only staff users can be members of a team."))
    before = {m.id for m in team.members}
    before_leads = {m.id for m in leads_of(team)}
    if before == wanted and before_leads == leads:
        return
    for member in list(team.members):
        if member.id not in wanted:
            member.team = None
            member.supervisor_id = None
    for person in people:
        if person.team is not None and person.team is not team:
            old = person.team
            person.team = team
            db.session.flush()
            sync_supervisors(old)
        person.team = team
        if person.id in leads:
            person.grant(Role.SUPERVISOR)
        elif person.id in before_leads:
            person.role_rows = [r for r in person.role_rows if r.role != Role.SUPERVISOR.value]
            if not person.role_rows:
                person.grant(Role.AGENT)
    db.session.flush()
    db.session.refresh(team)
    sync_supervisors(team)
    audit.record(
        actor,
        "team.members",
        "team",
        team.id,
        members=sorted(wanted),
        leads=sorted(leads),
        before=sorted(before),
        before_leads=sorted(before_leads),
    )


def sync_supervisors(team: Team) -> None:
    """Every non-lead member's supervisor is the team's first lead (by name), or nobody."""
    db.session.flush()
    db.session.refresh(team)
    leads = sorted(leads_of(team), key=lambda u: (u.name.lower(), u.id))
    lead_id = leads[0].id if leads else None
    for member in team.members:
        if member not in leads:
            member.supervisor_id = lead_id
