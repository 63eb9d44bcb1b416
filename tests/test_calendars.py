"""Work calendars from the database, the admin screens, and absences with their boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import Absence, AuditLog, Role, Team, User, WorkCalendar
from app.sla.business_time import is_working, next_working_moment
from app.sla.calendars import calendar_for_team, calendar_for_user, company_calendar
from tests.conftest import Person, csrf_from, sign_in

BERLIN = ZoneInfo("Europe/Berlin")


def signed_in(app: Flask, person: Person) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, person).status_code == 302
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any], **headers: str) -> Any:
    home = "/admin/calendars" if path.startswith("/admin") else "/agent/absences"
    token = csrf_from(client.get(home).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token}, headers=headers)


def audit_actions(app: Flask, prefix: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(AuditLog.action)
                .where(AuditLog.action.startswith(prefix))
                .order_by(AuditLog.id)
            )
        )


def user(app: Flask, person: Person) -> User:
    return db.session.get(User, person.id)  # type: ignore[return-value]


WEEK = {f"shift-{d}-0-start": "08:00" for d in range(5)} | {
    f"shift-{d}-0-end": "16:00" for d in range(5)
}


@pytest.fixture
def admin(make_user: Any) -> Person:
    return make_user(Role.ADMIN)


@pytest.fixture
def admin_client(app: Flask, admin: Person) -> FlaskClient:
    return signed_in(app, admin)


def make_team(app: Flask, name: str, *members: Person) -> int:
    with app.app_context():
        team = Team(name=name)
        db.session.add(team)
        db.session.flush()
        for member in members:
            db.session.get(User, member.id).team_id = team.id  # type: ignore[union-attr]
        db.session.commit()
        return team.id


# -- which calendar applies -----------------------------------------------------------------


def test_without_calendars_everyone_works_berlin_office_hours_with_german_holidays(
    app: Flask, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        cal = calendar_for_user(user(app, agent))
        assert is_working(cal, datetime(2026, 11, 16, 10, tzinfo=BERLIN))
        assert not is_working(cal, datetime(2026, 11, 16, 18, tzinfo=BERLIN))
        assert not is_working(cal, datetime(2026, 10, 3, 10, tzinfo=BERLIN))  # a Saturday
        assert not is_working(cal, datetime(2026, 12, 25, 10, tzinfo=BERLIN))
        assert calendar_for_team(None).name == company_calendar().name == "default"


def test_own_calendar_beats_team_calendar_beats_default(
    app: Flask, admin_client: FlaskClient, make_user: Any
) -> None:
    anna, ben = make_user(Role.AGENT), make_user(Role.AGENT)
    team_id = make_team(app, "Second Level", anna, ben)
    for name, zone, default in (
        ("Office", "Europe/Berlin", "on"),
        ("New York", "America/New_York", ""),
        ("Nights", "Europe/Berlin", ""),
    ):
        data = {"name": name, "zone": zone, "country": "DE", "subdivision": "", **WEEK}
        if default:
            data["is_default"] = "on"
        if name == "Nights":
            data = {"name": name, "zone": zone, "country": "", "subdivision": ""} | {
                f"shift-{d}-0-{edge}": t
                for d in range(7)
                for edge, t in (("start", "22:00"), ("end", "06:00"))
            }
        assert post(admin_client, "/admin/calendars/new", data).status_code == 303
    with app.app_context():
        ids = dict(db.session.execute(select(WorkCalendar.name, WorkCalendar.id)).all())
    assert (
        post(
            admin_client,
            "/admin/calendars/assign",
            {"team_id": team_id, "calendar_id": ids["New York"]},
        ).status_code
        == 303
    )
    assert (
        post(
            admin_client,
            "/admin/calendars/assign",
            {"user_id": ben.id, "calendar_id": ids["Nights"]},
        ).status_code
        == 303
    )

    monday_3am_berlin = datetime(2026, 11, 16, 3, tzinfo=BERLIN)
    with app.app_context():
        assert calendar_for_user(user(app, anna)).name == "New York"
        assert calendar_for_user(user(app, ben)).name == "Nights"
        assert is_working(calendar_for_user(user(app, ben)), monday_3am_berlin)
        # Anna starts at 08:00 in New York: 14:00 in Berlin.
        assert next_working_moment(
            calendar_for_user(user(app, anna)), monday_3am_berlin
        ) == datetime(2026, 11, 16, 8, tzinfo=ZoneInfo("America/New_York"))
        assert company_calendar().name == "Office"
        assert calendar_for_team(db.session.get(Team, team_id)).name == "New York"

    page = admin_client.get("/admin/calendars").get_data(as_text=True)
    assert "Nights" in page and "New York" in page
    # Back to the fallback: Ben now works by his team's calendar.
    assert (
        post(
            admin_client, "/admin/calendars/assign", {"user_id": ben.id, "calendar_id": ""}
        ).status_code
        == 303
    )
    with app.app_context():
        assert calendar_for_user(user(app, ben)).name == "New York"
    assert audit_actions(app, "calendar.") == [
        "calendar.created", "calendar.created", "calendar.created",
        "calendar.assigned", "calendar.assigned", "calendar.assigned",
    ]  # fmt: skip


# -- admin screens ------------------------------------------------------------------------------


def test_admin_edits_weekly_hours_and_sees_them_again(
    app: Flask, admin_client: FlaskClient
) -> None:
    data = {"name": "Support Berlin", "zone": "Europe/Berlin", "country": "de", "subdivision": "by"}
    data |= {"shift-0-0-start": "08:00", "shift-0-0-end": "12:00"}
    data |= {"shift-0-1-start": "13:00", "shift-0-1-end": "17:30"}
    data |= {"shift-5-0-start": "22:00", "shift-5-0-end": "06:00"}
    created = post(admin_client, "/admin/calendars/new", data)
    assert created.status_code == 303
    page = admin_client.get(created.headers["Location"]).get_data(as_text=True)
    assert 'value="13:00"' in page and 'value="17:30"' in page and 'value="22:00"' in page
    assert 'value="DE"' in page and 'value="BY"' in page
    assert "Epiphany" in page  # Bavaria's 6 January in the preview of the next holidays
    with app.app_context():
        cal = company_calendar()  # not the default: the built-in one still applies
        assert cal.name == "default"
        row = db.session.scalar(select(WorkCalendar))
        assert [(s.weekday, s.starts, s.ends) for s in row.shifts] == [
            (0, time(8), time(12)), (0, time(13), time(17, 30)), (5, time(22), time(6)),
        ]  # fmt: skip

    listing = admin_client.get("/admin/calendars").get_data(as_text=True)
    assert "Support Berlin" in listing and "22:00–06:00" in listing


@pytest.mark.parametrize(
    "change, message",
    [
        ({"zone": "Mars/Olympus"}, "Mars/Olympus is not a time zone"),
        ({"country": "XX"}, "no public holidays for the country code XX"),
        ({"subdivision": "ZZ"}, "DE has no region ZZ"),
        ({"name": ""}, "A calendar needs a name"),
        ({"shift-2-0-end": ""}, "give a shift both a start and an end"),
        ({"shift-2-0-start": "25:99"}, "is not a time of day"),
    ],
)
def test_a_bad_calendar_is_refused_and_the_form_keeps_what_was_typed(
    app: Flask, admin_client: FlaskClient, change: dict[str, str], message: str
) -> None:
    data = {"name": "Typo", "zone": "Europe/Berlin", "country": "DE", "subdivision": "", **WEEK}
    data |= {"shift-2-0-start": "08:00", "shift-2-0-end": "16:00"} | change
    answer = post(admin_client, "/admin/calendars/new", data)
    assert answer.status_code in (409, 422)
    html = answer.get_data(as_text=True)
    assert message in html
    assert 'value="08:00"' in html
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WorkCalendar)) == 0


def test_holiday_preview_is_a_fragment_for_htmx_and_speaks_german(
    app: Flask, admin_client: FlaskClient
) -> None:
    fragment = admin_client.get(
        "/admin/calendars/holidays?country=DE&subdivision=BE", headers={"HX-Request": "true"}
    )
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<!doctype" not in body.lower()
    assert body.lstrip().startswith('<div id="holiday-preview"')
    assert "Christmas Day" in body
    page = admin_client.get("/admin/calendars/holidays?country=DE&subdivision=BE")
    assert page.get_data(as_text=True).lstrip().lower().startswith("<!doctype html")

    token = csrf_from(admin_client.get("/admin/calendars").get_data(as_text=True))
    admin_client.post("/language", data={"language": "de", "csrf_token": token})
    german = admin_client.get(
        "/admin/calendars/holidays?country=DE&subdivision=BE", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "Erster Weihnachtstag" in german
    bad = admin_client.get(
        "/admin/calendars/holidays?country=DE&subdivision=QQ", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "QQ" in bad and "<!doctype" not in bad.lower()


def test_company_and_calendar_closure_days(
    app: Flask, admin_client: FlaskClient, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    assert (
        post(
            admin_client, "/admin/calendars/closures", {"day": "2027-12-30", "note": "Inventory"}
        ).status_code
        == 303
    )
    again = post(admin_client, "/admin/calendars/closures", {"day": "2027-12-30"})
    assert again.status_code == 409 and "is a closure day already" in again.get_data(as_text=True)
    assert "Inventory" in admin_client.get("/admin/calendars").get_data(as_text=True)
    with app.app_context():
        cal = calendar_for_user(user(app, agent))
        assert not is_working(cal, datetime(2027, 12, 30, 10, tzinfo=BERLIN))
        assert is_working(cal, datetime(2027, 12, 29, 10, tzinfo=BERLIN))
        closure_id = db.session.scalar(
            select(func.max(AuditLog.object_id)).where(AuditLog.action == "calendar.closure_added")
        )
    assert (
        post(admin_client, f"/admin/calendars/closures/{closure_id}/delete", {}).status_code == 303
    )
    with app.app_context():
        assert is_working(
            calendar_for_user(user(app, agent)), datetime(2027, 12, 30, 10, tzinfo=BERLIN)
        )
    assert audit_actions(app, "calendar.closure") == [
        "calendar.closure_added",
        "calendar.closure_removed",
    ]


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.COMPLIANCE])
def test_only_admins_edit_calendars(
    app: Flask, make_user: Any, admin_client: FlaskClient, role: Role
) -> None:
    assert (
        post(
            admin_client,
            "/admin/calendars/new",
            {"name": "Kept", "zone": "UTC", "country": "", "subdivision": ""},
        ).status_code
        == 303
    )
    outsider = signed_in(app, make_user(role))
    assert outsider.get("/admin/calendars").status_code == 403
    with app.app_context():
        cal_id = db.session.scalar(select(WorkCalendar.id))
    for path, data in (
        (f"/admin/calendars/{cal_id}/delete", {}),
        ("/admin/calendars/assign", {"user_id": "1", "calendar_id": str(cal_id)}),
        ("/admin/calendars/closures", {"day": "2027-01-05"}),
    ):
        assert outsider.post(path, data=data).status_code in (400, 403)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WorkCalendar)) == 1
        assert audit_actions(app, "calendar.") == ["calendar.created"]


# -- absences ------------------------------------------------------------------------------------


def absence_data(**over: Any) -> dict[str, Any]:
    return {
        "kind": "leave",
        "first_day": "2027-02-01",
        "last_day": "2027-02-05",
        "note": "Skiing",
    } | over


def absences_of(app: Flask, person: Person) -> list[tuple[datetime, datetime, str, int | None]]:
    with app.app_context():
        return [
            (a.starts_at, a.ends_at, a.kind, a.entered_by_id)
            for a in db.session.scalars(select(Absence).where(Absence.user_id == person.id))
        ]


def test_agent_enters_own_leave_and_is_not_working_then(app: Flask, make_user: Any) -> None:
    agent = make_user(Role.AGENT)
    client = signed_in(app, agent)
    page = client.get("/agent/absences").get_data(as_text=True)
    assert 'name="first_day"' in page and "Nobody is away." in page
    assert post(client, "/agent/absences", absence_data(user_id=agent.id)).status_code == 303
    # Whole days in the agent's zone (Europe/Berlin): 1 Feb 00:00 to 6 Feb 00:00 local.
    assert absences_of(app, agent) == [
        (
            datetime(2027, 1, 31, 23, tzinfo=UTC),
            datetime(2027, 2, 5, 23, tzinfo=UTC),
            "leave",
            agent.id,
        )
    ]
    listing = client.get("/agent/absences").get_data(as_text=True)
    assert "Skiing" in listing and "Leave" in listing
    with app.app_context():
        cal = calendar_for_user(user(app, agent))
        assert not is_working(cal, datetime(2027, 2, 3, 10, tzinfo=BERLIN))
        assert next_working_moment(cal, datetime(2027, 2, 3, 10, tzinfo=BERLIN)) == datetime(
            2027, 2, 8, 9, tzinfo=BERLIN
        )
    assert audit_actions(app, "absence.") == ["absence.added"]


def test_part_of_a_day_and_a_wrong_order_is_refused_as_a_fragment(
    app: Flask, make_user: Any
) -> None:
    agent = make_user(Role.AGENT)
    client = signed_in(app, agent)
    data = absence_data(
        kind="sickness", first_day="2027-02-01", last_day="2027-02-01", start_time="13:00"
    )
    assert post(client, "/agent/absences", data).status_code == 303
    assert absences_of(app, agent)[0][:2] == (
        datetime(2027, 2, 1, 12, tzinfo=UTC),
        datetime(2027, 2, 1, 23, tzinfo=UTC),
    )
    wrong = post(
        client,
        "/agent/absences",
        absence_data(first_day="2027-02-05", last_day="2027-02-01"),
        **{"HX-Request": "true"},
    )
    body = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and "An absence ends after it starts." in body
    assert "<!doctype" not in body.lower() and 'id="absences"' in body
    assert 'value="2027-02-05"' in body  # what was typed stays
    assert len(absences_of(app, agent)) == 1


def test_an_agent_cannot_enter_or_remove_another_agents_absence(app: Flask, make_user: Any) -> None:
    mallory, victim = make_user(Role.AGENT), make_user(Role.AGENT)
    make_team(app, "Same team", mallory, victim)
    attacker = signed_in(app, mallory)
    page = attacker.get("/agent/absences").get_data(as_text=True)
    assert (
        f'name="user_id" value="{mallory.id}"' in page and '<select id="absence-person"' not in page
    )
    refused = post(attacker, "/agent/absences", absence_data(user_id=victim.id))
    assert refused.status_code == 403
    assert absences_of(app, victim) == []

    victim_client = signed_in(app, victim)
    assert (
        post(victim_client, "/agent/absences", absence_data(user_id=victim.id)).status_code == 303
    )
    with app.app_context():
        absence_id = db.session.scalar(select(Absence.id).where(Absence.user_id == victim.id))
    assert "Skiing" not in attacker.get("/agent/absences").get_data(as_text=True)
    assert post(attacker, f"/agent/absences/{absence_id}/delete", {}).status_code == 403
    assert len(absences_of(app, victim)) == 1
    assert audit_actions(app, "absence.") == ["absence.added"]


def test_a_supervisor_manages_absences_of_their_team_only(app: Flask, make_user: Any) -> None:
    boss, member, stranger = (
        make_user(Role.SUPERVISOR),
        make_user(Role.AGENT),
        make_user(Role.AGENT),
    )
    make_team(app, "First Level", boss, member)
    make_team(app, "Billing", stranger)
    client = signed_in(app, boss)
    page = client.get("/agent/absences").get_data(as_text=True)
    assert f'<option value="{member.id}"' in page and f'<option value="{stranger.id}"' not in page

    assert (
        post(
            client, "/agent/absences", absence_data(user_id=member.id, kind="sickness")
        ).status_code
        == 303
    )
    assert [a[2:] for a in absences_of(app, member)] == [("sickness", boss.id)]
    assert post(client, "/agent/absences", absence_data(user_id=stranger.id)).status_code == 403
    assert absences_of(app, stranger) == []

    stranger_client = signed_in(app, stranger)
    assert (
        post(stranger_client, "/agent/absences", absence_data(user_id=stranger.id)).status_code
        == 303
    )
    with app.app_context():
        theirs = db.session.scalar(select(Absence.id).where(Absence.user_id == stranger.id))
        ours = db.session.scalar(select(Absence.id).where(Absence.user_id == member.id))
    assert post(client, f"/agent/absences/{theirs}/delete", {}).status_code == 403
    assert post(client, f"/agent/absences/{ours}/delete", {}).status_code == 303
    assert absences_of(app, member) == [] and len(absences_of(app, stranger)) == 1
    assert audit_actions(app, "absence.") == ["absence.added", "absence.added", "absence.removed"]


def test_customers_have_no_absences_page(app: Flask, make_user: Any) -> None:
    customer = make_user(Role.CUSTOMER)
    client = app.test_client()
    assert sign_in(client, customer, portal=True).status_code == 302
    assert client.get("/agent/absences").status_code in (302, 403)


def test_absence_page_in_the_navigation(app: Flask, make_user: Any) -> None:
    client = signed_in(app, make_user(Role.AGENT))
    assert 'href="/agent/absences"' in client.get("/agent/").get_data(as_text=True)


def test_date_of_absence_shown_in_the_viewer_zone(app: Flask, make_user: Any) -> None:
    agent = make_user(Role.AGENT)
    with app.app_context():
        db.session.get(User, agent.id).timezone = "America/New_York"  # type: ignore[union-attr]
        db.session.commit()
    client = signed_in(app, agent)
    assert (
        post(
            client, "/agent/absences", absence_data(first_day="2027-03-01", last_day="2027-03-01")
        ).status_code
        == 303
    )
    starts, ends, *_ = absences_of(app, agent)[0]
    assert starts == datetime(2027, 3, 1, 5, tzinfo=UTC) and ends == datetime(
        2027, 3, 2, 5, tzinfo=UTC
    )


# -- in Chromium ------------------------------------------------------------------------------


@pytest.mark.browser
def test_in_chromium_admin_builds_a_calendar_with_a_live_holiday_preview(
    app: Flask, browser: Any, live_server: str, make_user: Any
) -> None:
    from pathlib import Path

    admin = make_user(Role.ADMIN)
    problems: list[str] = []
    page = browser.new_context().new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/login")
    page.get_by_label("Email address").fill(admin.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/admin/")
    page.get_by_role("link", name="Calendars", exact=True).click()
    page.get_by_role("link", name="New calendar").click()
    page.get_by_label("Name", exact=True).fill("Munich office")
    page.get_by_label("Region (optional, e.g. BY for Bavaria)").fill("BY")
    page.locator("#holiday-preview").get_by_text("Epiphany").wait_for()  # htmx swapped it in
    page.get_by_label("Saturday, shift 1, from").fill("22:00")
    page.get_by_label("Saturday, shift 1, until").fill("06:00")
    page.get_by_role("button", name="Save calendar").click()
    page.get_by_text("Calendar Munich office saved.").wait_for()
    artifacts = Path(__file__).parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "admin-calendar.png"), full_page=True)
    assert page.get_by_label("Saturday, shift 1, from").input_value() == "22:00"
    assert problems == []
