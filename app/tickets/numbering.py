"""Human ticket numbers such as ``T-104233``.

A number comes from a database sequence (``TicketNumber`` rows), so two processes creating
tickets at the same moment can never get the same one. The sequence value is then spread
over the number space by a fixed permutation, so neighbouring tickets do not get
neighbouring numbers and a number does not tell how many tickets the company handles.
Numbers are references, not secrets: every URL that takes one also checks ownership.
"""

from __future__ import annotations

from sqlalchemy import insert

from app.extensions import db
from app.models.tickets import TicketNumber

# Sequence values 0..BLOCK-1 map one-to-one onto 100000..999999; the next BLOCK values onto
# 1100000..1999999, and so on: each block owns its own million, so blocks never collide.
BLOCK = 900_000
_MULTIPLIER = 7_919_333  # coprime with BLOCK, so multiplication mod BLOCK is a bijection
FIRST = 100_000


def spread(sequence_value: int) -> int:
    """Map the n-th sequence value to a number no other sequence value maps to."""
    block, offset = divmod(sequence_value, BLOCK)
    return block * 1_000_000 + FIRST + (offset * _MULTIPLIER) % BLOCK


def format_number(value: int, prefix: str) -> str:
    return f"{prefix}-{value}"


_INSERT = insert(TicketNumber)


def next_number(prefix: str) -> str:
    """Draw the next number in the caller's transaction (an insert, not a commit).

    A Core insert rather than an ORM object and a flush: the row is never read back as an
    object, and a flush here would also write whatever else is pending, one more unit of
    work per ticket for nothing.
    """
    result = db.session.connection().execute(_INSERT)
    (value,) = result.inserted_primary_key
    return format_number(spread(value - 1), prefix)
