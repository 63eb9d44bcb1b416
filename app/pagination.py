"""One way to cut a list into pages, for every list in the desk.

Flask-SQLAlchemy's ``db.paginate`` returns only scalars and trusts the page number it is
given; our lists also page over rows of several columns, and a page number typed into a
URL (``?page=99999999999999999999``) must land on the last page, not overflow the
database's OFFSET. Hence this small helper: count, clamp, then fetch one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select

from app.extensions import db

T = TypeVar("T")


def page_count(total: int, per_page: int) -> int:
    """How many pages ``total`` rows fill; an empty list still has one (empty) page."""
    return max((total + per_page - 1) // per_page, 1)


def clamp_page(page: int, total: int, per_page: int) -> int:
    """``page`` brought into 1..last, so any number typed into a URL shows a real page."""
    return min(max(page, 1), page_count(total, per_page))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and what a pager needs to show the others."""

    rows: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)


def count_of(stmt: Select[Any]) -> int:
    """Rows ``stmt`` would return (its ORDER BY dropped: counting needs no order)."""
    return db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def paginate(
    stmt: Select[Any], page: int, per_page: int, *, scalars: bool = True, total: int | None = None
) -> Page[Any]:
    """Count ``stmt`` (unless ``total`` is known), clamp ``page`` and fetch that page.

    ``scalars``: one entity per row (the usual case); False gives rows of several columns.
    """
    if total is None:
        total = count_of(stmt)
    page = clamp_page(page, total, per_page)
    result = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page)).unique()
    rows = list(result.scalars()) if scalars else [tuple(row) for row in result]
    return Page(rows, total, page, per_page)
