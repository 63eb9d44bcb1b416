"""Rate limits on failed sign-ins, per account and per client address.

The second step (a two-factor code) has the same limits under scopes of its own, keyed by
the account waiting for its code (``second_step_limits``).

Only failures count (``deduct_when``), so a person who signs in correctly is never slowed
down by the limit, and a guesser is stopped whichever address or account they vary.
Counters live in Redis so every web process sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request

from app.extensions import limiter

FAILED = 401


def _account_key() -> str:
    return "signin-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _failed(response: Response) -> bool:
    return response.status_code == FAILED


def _limits(account_key: Callable[[], str], scope: str) -> Callable[..., Any]:
    """Failed tries count per client address and per account, under their own scopes."""
    per_address = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"],
        methods=["POST"],
        deduct_when=_failed,
        scope=f"{scope}-address",
    )
    per_account = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
        key_func=account_key,
        methods=["POST"],
        deduct_when=_failed,
        scope=f"{scope}-account",
    )
    return lambda view: per_address(per_account(view))


def sign_in_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    return _limits(_account_key, "signin")(view)


def _code_account_key() -> str:
    """The account a code is typed for: the pending sign-in's, or the signed-in user's."""
    from flask_login import current_user

    from app.web.auth.second_factor import pending_user_id

    uid = pending_user_id()
    if uid is None and current_user.is_authenticated:
        uid = current_user.id
    return f"second-step-account:{uid or 'none'}"


def second_step_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrong codes count like wrong passwords: per client address and per account.

    Also on the security page's forms, so a borrowed session cannot guess its way to
    turning the second factor off.
    """
    return _limits(_code_account_key, "second-step")(view)
