"""Answers that stay true for a whole batch of work, asked once per batch.

Filing a batch of mail creates hundreds of tickets in one transaction, and each asks the
same questions of tables that filing never changes: which SLA policies apply to priority
"normal" with no account, whether the unteamed tickets have an assignment rule. Asked per
ticket they cost a statement each; inside ``batch()`` the first answer is kept and reused.

Only questions whose answer the batch itself cannot change belong here (configuration
tables that only admins edit), and only the ids and plain values are kept, never ORM
objects, so a savepoint rolled back inside the batch cannot leave a stale object behind.
Outside ``batch()`` every call computes afresh, which is what a web request wants: an
admin's edit is seen by the very next ticket.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_MEMO: ContextVar[dict[Hashable, object] | None] = ContextVar("vaultdesk_batch_memo", default=None)


@contextmanager
def batch() -> Iterator[None]:
    """Keep answers given by ``remembered`` until the block ends (nested blocks share one)."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def remembered(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or inside ``batch()`` the answer it gave first for ``key``."""
    memo = _MEMO.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]  # type: ignore[return-value]
