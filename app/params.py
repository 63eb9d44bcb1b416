"""One validated path from request text to typed values: ids, page numbers, choices.

Views read query and form values through these functions, never with ``int()``,
``type=int`` or ``Status(...)`` on raw input. Each of those answered 500 once:
``"²".isdigit()`` is true but ``int("²")`` fails; a 20-digit id passes ``int()`` and then
overflows SQLite's 64-bit integers inside a query; an unknown status raised ``ValueError``.
Here, what a field cannot hold is either refused with a sentence (``InvalidInput``, 422),
or, for the filters of a shareable list URL, dropped as the lists always did.

The sentences are in the reader's language. ``what`` (the field's name) is given by the
caller, already translated where a person reads it (``_("status")``): only the caller knows
which noun its field is. Enum labels are translated here (``_(Status.label)``).

Ids in URL paths are checked by the ``int`` converter (``IdConverter``): a number outside
1..2^63-1 matches no route, so it is a 404 before any view runs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from flask_babel import gettext as _
from werkzeug.routing import IntegerConverter

from app.errors import InvalidInput

MAX_ID = 2**63 - 1  # the largest integer SQLite and PostgreSQL's bigint store
# A page past this cannot exist (it would need 2^31 full pages) and keeps any
# OFFSET (page - 1) * per_page far inside 64 bits, whatever the list does with it.
MAX_PAGE = 2**31
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also accepts "²" and "١"

E = TypeVar("E", bound=enum.Enum)


def shown(value: str, limit: int = 40) -> str:
    """Typed text as a message may quote it: cut short, control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in value.strip()[:limit])


def id_or_none(value: object) -> int | None:
    """The id ``value`` spells (ASCII digits, 1..2^63-1), else None: for lenient filters."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def int_id(value: str | None, what: str) -> int | None:
    """A chosen id: blank is None (nothing chosen); anything but an id is refused."""
    if value is None or not value.strip():
        return None
    number = id_or_none(value)
    if number is None:
        raise InvalidInput(
            _("“%(value)s” is not a valid choice for %(what)s.", value=shown(value), what=what)
        )
    return number


def int_ids(values: Iterable[str], what: str) -> list[int]:
    """Several chosen ids (ticked boxes, a multiple select): blanks skipped, garbage refused."""
    return [n for n in (int_id(v, what) for v in values) if n is not None]


def lenient_ids(values: Iterable[str]) -> tuple[int, ...]:
    """The valid ids among ``values``, sorted and unique; the rest of a filter is dropped."""
    return tuple(sorted({n for n in map(id_or_none, values) if n is not None}))


def page_number(value: str | None) -> int:
    """The page a URL asks for: not a positive number means page 1; lists clamp the rest.

    A huge number is capped at ``MAX_PAGE`` here and brought to the last real page by
    ``app.pagination.clamp_page``, so a typed ``?page=99999999999999999999`` shows a page.
    """
    number = id_or_none(value)
    return min(number, MAX_PAGE) if number is not None else 1


def choice(kind: type[E], value: str | None, what: str) -> E | None:
    """A member of the enum ``kind`` by value: blank is None, anything else is refused."""
    if value is None or not value.strip():
        return None
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(_(m.label) if hasattr(m, "label") else str(m.value) for m in kind)
        raise InvalidInput(
            _(
                "“%(value)s” is not a %(what)s. Choose one of: %(names)s.",
                value=shown(value),
                what=what,
                names=names,
            )
        ) from None


def required_choice(kind: type[E], value: str | None, what: str) -> E:
    """Like ``choice``, for a field that must be chosen: blank is refused too."""
    member = choice(kind, value, what)
    if member is None:
        raise InvalidInput(_("Choose a %(what)s.", what=what))
    return member


def flag(value: str | None) -> bool:
    """A checkbox or hidden yes/no field: only the usual "on" values mean yes."""
    return (value or "").strip().lower() in ("1", "on", "true", "yes")


class IdConverter(IntegerConverter):
    """The app's ``int`` converter: only 1..2^63-1 match, so larger ids are a plain 404."""

    def __init__(self, url_map: Any, fixed_digits: int = 0, **bounds: int | None) -> None:
        super().__init__(
            url_map,
            fixed_digits=fixed_digits,
            min=bounds.get("min", 1),
            max=bounds.get("max", MAX_ID),
        )
