"""Role guards for blueprints and views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.models.people import Role

F = TypeVar("F", bound=Callable[..., Any])


def sign_in_redirect() -> Response:
    """Send an anonymous visitor to the sign-in page of the area they tried to enter."""
    endpoint = "portal.login" if request.path.startswith("/portal") else "auth.login"
    target = url_for(endpoint, next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request") == "true":
        # htmx would swap the login page into a fragment; make it navigate instead.
        response = Response(status=401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def check_roles(roles: tuple[Role, ...]) -> Response | None:
    if not current_user.is_authenticated:
        return sign_in_redirect()
    if not current_user.has_role(*roles):
        abort(403)
    return None


def guard_blueprint(
    blueprint: Blueprint, *roles: Role, open_endpoints: tuple[str, ...] = ()
) -> None:
    """Every view of ``blueprint`` needs one of ``roles``, except ``open_endpoints``."""

    @blueprint.before_request
    def _guard() -> Response | None:
        if request.endpoint in open_endpoints:
            return None
        return check_roles(roles)


def safe_next(target: str | None, fallback: str) -> str:
    """Only same-site relative paths: ``next`` must not become an open redirect."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target:
        return fallback
    return target


def home_for(user: Any) -> str:
    """Where a user lands after signing in: the home of their main role."""
    if user.has_role(Role.AGENT, Role.SUPERVISOR):
        return url_for("agent.inbox")
    if user.has_role(Role.COMPLIANCE):
        return url_for("compliance.home")
    if user.has_role(Role.ADMIN):
        return url_for("admin.home")
    return url_for("portal.home")
