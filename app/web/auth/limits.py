"""Rate limits on failed sign-ins, per account and per client address.

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


def sign_in_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    per_address = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"],
        methods=["POST"],
        deduct_when=_failed,
        scope="signin-address",
    )
    per_account = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
        key_func=_account_key,
        methods=["POST"],
        deduct_when=_failed,
        scope="signin-account",
    )
    return per_address(per_account(view))
