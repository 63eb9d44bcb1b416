"""Absolute URLs under ``BASE_URL``, for what leaves the desk: mails, links, jobs.

There is no request when a job renders a mail, so ``url_for`` cannot know the public host;
and behind a reverse proxy that mounts the desk under a path (``https://example.com/help``)
the prefix must appear in every link. One builder, used by every mail and link, keeps them
agreeing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app


def public_url(endpoint: str, **values: Any) -> str:
    """``endpoint`` as an absolute URL under ``BASE_URL`` (its path prefix included)."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc,
        script_name=base.path.rstrip("/") or "/",
        url_scheme=base.scheme or "http",
    )
    return adapter.build(endpoint, values, force_external=True)
