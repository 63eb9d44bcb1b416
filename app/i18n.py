"""Language and time zone: English and German catalogs through Flask-Babel, and zones.

The language is, in order: the signed-in user's own setting, the one chosen on a sign-in
page (kept in the session), the browser's Accept-Language, English.

Times are stored in UTC and shown, or typed, in the viewer's zone. A stored zone name can
stop existing (tzdata renames zones), so every lookup falls back (the company's zone, then
UTC) instead of failing a page.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import Flask, current_app, has_app_context, has_request_context, request, session
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_login import current_user

from app.errors import InvalidInput

LANGUAGES = {"en": "English", "de": "Deutsch"}
babel = Babel()


def select_locale() -> str:
    if not has_request_context():
        return "en"  # jobs and commands: mails choose their reader's language themselves
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def init_app(app: Flask) -> None:
    babel.init_app(
        app, locale_selector=select_locale, default_translation_directories="translations"
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, get_locale=get_locale)


def is_zone(name: str | None) -> bool:
    """Whether ``name`` is a zone this machine knows (IANA names, e.g. Europe/Berlin)."""
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(name: str | None = None) -> ZoneInfo:
    """The zone ``name``; an unknown or empty one gives the company's zone, then UTC."""
    company = current_app.config.get("TIMEZONE") if has_app_context() else None
    for candidate in (name, company):
        if is_zone(candidate):
            return ZoneInfo(candidate)  # type: ignore[arg-type]
    return ZoneInfo("UTC")


def viewer_zone() -> ZoneInfo:
    """The signed-in user's zone, or the company's for anonymous pages."""
    name = current_user.timezone if current_user and current_user.is_authenticated else None
    return zone(name)


@cache
def zone_choices() -> list[str]:
    """Zones offered in pickers: the regional names people look for, not aliases."""
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))


def parse_local_datetime(
    value: str | None, zone_name: str | None, *, date_means: time | None = None
) -> datetime | None:
    """A ``datetime-local`` value typed in ``zone_name``, as aware UTC; blank gives None.

    A bare date (``YYYY-MM-DD``) is accepted when ``date_means`` says which time of that
    day it stands for. Text that is not a date raises ``InvalidInput`` naming it.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        if date_means is not None and len(value) == 10:
            naive = datetime.combine(datetime.fromisoformat(value).date(), date_means)
        else:
            naive = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(_("“%(value)s” is not a date and time.", value=value[:40])) from None
    if naive.tzinfo is None:
        naive = naive.replace(tzinfo=zone(zone_name))
    try:
        return naive.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(_("“%(value)s” is not a date and time.", value=value[:40])) from None
