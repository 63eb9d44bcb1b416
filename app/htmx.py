"""The one place that decides between a full page and an htmx fragment, and how htmx errs.

The convention every view follows:

1. A full page extends ``base.html``. Plain requests, boosted navigations (``HX-Boosted``)
   and history restores get full pages; nothing else does.
2. Any other htmx request gets the fragment for the part it swaps: a partial template
   (``_name.html``) or a named block of the page through ``render``. Also when it fails:
   an error is either the same fragment re-rendered with the error in place (forms keep
   everything typed; status 422, or 409 for a conflict), or a message for the flash area
   (``message_to_flash``: ``HX-Retarget: #flash``, ``HX-Reswap: innerHTML``, and
   ``HX-Push-Url: false`` so a refused boosted link does not change the address). Never a
   whole page into a fragment target.
3. A successful action that changes a list answers with the list fragment, plus the flash
   out of band (``oob_flash``: ``templates/_oob_flash.html`` swaps ``#flash``). An action
   that leaves the page answers ``HX-Redirect`` (``go_to``): htmx must never be given a
   redirect, because the browser follows it inside the XHR and htmx would swap whatever
   page comes back into the target.
4. htmx 2 does not swap 4xx/5xx answers unless told to; ``base.html``'s ``htmx-config``
   (``responseHandling``) swaps them, so both kinds of error above are shown, and 204
   swaps nothing. ``app.js`` only keeps the list poll's 304 from counting as an error.
5. Every response whose body depends on the htmx headers carries ``Vary: HX-Request``.
6. Progressive enhancement: a real ``href``/``action`` beside every ``hx-*``; without
   JavaScript a form posts, redirects (303) and shows its flash on the next page.

``install`` enforces the parts a single view could forget, after every request:
a redirect answering a non-boosted htmx request becomes ``HX-Redirect`` (a real
navigation, the flash waiting in the session), and a whole page answering any htmx request
is retargeted to ``body``. The second matters for boosted links and forms: they inherit
``hx-target``/``hx-swap`` from the fragment they sit in, so without it a ticket link inside
``#ticket-list`` would draw the whole ticket page inside the list.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block

FLASH_TARGET = "#flash"


def _headers_consulted() -> None:
    g.htmx_varies = True


def is_htmx() -> bool:
    """Any htmx request that swaps something (a history restore wants the page)."""
    _headers_consulted()
    headers = request.headers
    return (
        headers.get("HX-Request") == "true" and headers.get("HX-History-Restore-Request") != "true"
    )


def is_boosted() -> bool:
    _headers_consulted()
    return request.headers.get("HX-Boosted") == "true"


def wants_fragment() -> bool:
    """An htmx swap, not a boosted navigation or a history restore (those need the page)."""
    return is_htmx() and not is_boosted()


def render(template: str, block: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render ``block`` of ``template`` for htmx swaps, the whole page otherwise."""
    if block is not None and wants_fragment():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def message_to_flash(response: Response) -> Response:
    """Show ``response`` (a message fragment) in the flash area, whatever htmx targeted."""
    response.headers["HX-Retarget"] = FLASH_TARGET
    response.headers["HX-Reswap"] = "innerHTML"
    response.headers["HX-Push-Url"] = "false"
    response.vary.add("HX-Request")
    return response


def oob_flash() -> str:
    """The flashed messages as an out-of-band swap of ``#flash``, to append to a fragment."""
    return render_template("_oob_flash.html")


def go_to(target: str) -> Response:
    """Leave the page: ``HX-Redirect`` for htmx, a 303 for a plain form post."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
    else:
        response = redirect(target, code=303)
    response.vary.add("HX-Request")
    return response


def _is_document(response: Response) -> bool:
    if response.mimetype != "text/html" or response.direct_passthrough or response.is_streamed:
        return False
    return response.get_data()[:64].lstrip().lower().startswith(b"<!doctype html")


def _enforce(response: Response) -> Response:
    consulted = g.get("htmx_varies", False)
    if not is_htmx():
        if consulted:
            response.vary.add("HX-Request")
        return response
    response.vary.add("HX-Request")  # what follows makes it differ from a plain request's
    location = response.headers.get("Location")
    if location and response.status_code in (301, 302, 303, 307, 308) and not is_boosted():
        response.status_code = 204
        response.set_data(b"")
        del response.headers["Location"]
        response.headers["HX-Redirect"] = location
    elif "HX-Retarget" not in response.headers and _is_document(response):
        response.headers["HX-Retarget"] = "body"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def install(app: Flask) -> None:
    """Apply the two rules of the convention that hold for every response (see above)."""
    app.after_request(_enforce)
