"""Dates, times and sizes through Babel, in the viewer's language and zone (issue 11, 20)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from app import audit
from app.actor import Actor
from app.extensions import db
from app.files.store import human_size
from app.i18n import format_ago, format_day, format_number, format_size, format_when
from app.models import Role
from app.models.people import User
from tests.conftest import sign_in

DEC_2 = datetime(2026, 12, 2, 13, 5, tzinfo=UTC)


def test_german_dates_times_and_sizes(app: Any) -> None:
    with app.test_request_context(headers={"Accept-Language": "de"}):
        assert format_when(DEC_2) == "2. Dez. 2026, 14:05"  # Berlin, the company's zone
        assert format_day(DEC_2) == "2. Dez. 2026"
        assert format_size(1536 * 1024) == "1,5 MB"
        assert human_size(1536 * 1024) == "1,5 MB"  # the old helper now says the same
        assert format_number(12345) == "12.345"
        assert format_ago(DEC_2 - timedelta(hours=3), now=DEC_2) == "vor 3 Stunden"


def test_english_dates_times_and_sizes(app: Any) -> None:
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert format_when(DEC_2) == "Dec 2, 2026, 2:05\u202fPM"
        assert format_day(date(2026, 12, 2)) == "Dec 2, 2026"
        assert format_size(100_000) == "97.7 KB"
        assert format_size(5 * 1024**4) == "5 TB"
        assert format_size(512) == "512 bytes"
        assert format_ago(DEC_2 + timedelta(days=2), now=DEC_2) == "in 2 days"


def test_the_viewers_own_zone_wins(app: Any, make_user: Any, client: Any) -> None:
    person = make_user(Role.COMPLIANCE)
    with app.app_context():
        user = db.session.get(User, person.id)
        user.timezone, user.language = "America/New_York", "de"
        db.session.commit()
    assert sign_in(client, person).status_code == 302
    with app.app_context():
        row = audit.record(Actor.system("clock"), "vault.orphans", "vault", None, found=0)
        row.at = DEC_2
        db.session.commit()
    html = client.get("/compliance/?actor=clock").get_data(as_text=True)
    assert "2. Dez. 2026, 08:05" in html  # 13:05 UTC in New York, in German


def test_outside_a_request_english_and_the_company_zone(app: Any) -> None:
    with app.app_context():
        assert format_when(DEC_2) == "Dec 2, 2026, 2:05\u202fPM"
        assert format_size(1536 * 1024) == "1.5 MB"
    assert format_when(None) == "" and format_size(None) == ""
