"""Language and time zone: English and German catalogs through Flask-Babel, and zones.

The language is, in order: the signed-in user's own setting, the one chosen on a sign-in
page (kept in the session), the browser's Accept-Language, English.

Times are stored in UTC and shown, or typed, in the viewer's zone. A stored zone name can
stop existing (tzdata renames zones), so every lookup falls back (the company's zone, then
UTC) instead of failing a page.

Formatting for display goes through Babel, never ``strftime``: a German page says
"2. Dez. 2026, 14:05" and "1,5 MB", an English one "Dec 2, 2026, 2:05 PM" and "1.5 MB".
The filters registered here (``localtime``, ``localdate``, ``ago``, ``filesize``,
``number``) are what templates use; ``flask_babel``'s own formatters see the same zone,
because the Babel time-zone selector below is the viewer's zone. Outside a request (jobs,
commands) the same helpers fall back to English and the company's zone rather than to the
machine's locale, which nobody chose.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import flask_babel
import pytz
from babel import Locale, dates, numbers
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


def select_timezone() -> Any:
    """Babel's zone: the viewer's, as the pytz zone flask_babel expects (UTC if pytz lacks it)."""
    try:
        return pytz.timezone(viewer_zone().key)
    except pytz.UnknownTimeZoneError:
        return pytz.UTC


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        locale_selector=select_locale,
        timezone_selector=select_timezone,
        default_translation_directories="translations",
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, get_locale=get_locale)
    for name, function in (
        ("localtime", format_when),
        ("localdate", format_day),
        ("ago", format_ago),
        ("filesize", format_size),
        ("number", format_number),
    ):
        app.add_template_filter(function, name)
    app.jinja_env.globals.update(format_size=format_size)


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


# -- display formats -------------------------------------------------------------------------


def _in_request() -> bool:
    """flask_babel's formatters need a request's locale and zone; jobs format in English."""
    return has_request_context()


def _locale() -> Locale:
    return (get_locale() if _in_request() else None) or Locale.parse("en")


def when_pattern(locale: Locale) -> str:
    """Date and time as the language writes them: "2. Dez. 2026, 14:05", "Dec 2, 2026, 2:05 PM".

    CLDR's own "medium" pattern has seconds and (in German) only digits; the abbreviated
    month with the language's short time reads better in lists and is still unambiguous.
    """
    day = locale.datetime_skeletons["yMMMd"].pattern
    clock = locale.time_formats["short"].pattern
    return str(locale.datetime_formats["medium"]).replace("{1}", day).replace("{0}", clock)


def format_when(value: datetime | None) -> str:
    """A stored UTC time in the viewer's zone and language; empty for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # stored times are UTC (see app.models.types)
    pattern = when_pattern(_locale())
    if _in_request():
        return flask_babel.format_datetime(value, pattern)
    return dates.format_datetime(value, pattern, tzinfo=zone(), locale=_locale())


def format_day(value: datetime | date | None) -> str:
    """Only the date ("2. Dez. 2026"), of the viewer's day for a datetime."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(viewer_zone() if _in_request() else zone()).date()
    return dates.format_skeleton("yMMMd", value, locale=_locale())


def format_ago(value: datetime | timedelta | None, now: datetime | None = None) -> str:
    """How long ago (or from now) ``value`` is, in words: "vor 3 Stunden", "in 2 days"."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value - (now or datetime.now(UTC))
    if _in_request():
        return flask_babel.format_timedelta(value, add_direction=True)
    return dates.format_timedelta(value, add_direction=True, locale=_locale())


def format_number(value: float | int | None) -> str:
    """A number with the language's grouping and decimal signs ("1.234" in German)."""
    if value is None:
        return ""
    if _in_request():
        return flask_babel.format_decimal(value)
    return numbers.format_decimal(value, locale=_locale())


SIZE_UNITS = ("KB", "MB", "GB", "TB")


def format_size(size: int | None) -> str:
    """A file size in binary units with the language's decimals: "1,5 MB", "1.5 MB"."""
    if size is None:
        return ""
    if size < 1024:
        return _("%(n)s bytes", n=format_number(size)) if _in_request() else f"{size} bytes"
    value, unit = float(size) / 1024, SIZE_UNITS[0]
    for bigger in SIZE_UNITS[1:]:
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    pattern = "#,##0.#"
    if _in_request():
        amount = flask_babel.format_decimal(value, format=pattern)
    else:
        amount = numbers.format_decimal(value, format=pattern, locale=_locale())
    return f"{amount} {unit}"
