"""What a received mail may show: sanitised HTML, inline and remote images, folded quotes.

Two moments, two functions:

* **At ingest** ``sanitise_mail_html`` turns the sender's HTML into the inert fragment stored
  in ``StreamEntry.body_html``. It runs nh3 (the Rust ``ammonia`` sanitiser) with a mail-sized
  allowlist: no script, style elements, event handlers, forms, frames, objects, SVG or MathML;
  links only to ``http``/``https``/``mailto``/``tel`` (never relative, so a mail cannot point
  an agent at one of our own URLs), opened in a new tab with ``rel="noopener noreferrer
  nofollow"``; ``style`` attributes keep only plain properties whose values load nothing
  (no ``url()``, ``image-set()``, ``expression()``, ``@import``, escapes or comments).
  Images never keep a ``src``: a ``cid:`` image whose content-id is in ``inline`` becomes
  ``<img data-vd-inline="PUBLIC_ID">`` (the vault file stored at ingest), a remote image becomes
  ``<img data-vd-remote="URL">`` -- an inert marker -- and ``data:`` images are dropped (inline
  images of mail come as ``cid:`` parts and are in the vault; a ``data:`` URL is the usual
  vehicle for smuggling content past filters). Quote containers (``blockquote``, Gmail's
  ``gmail_quote``, Thunderbird's ``moz-cite-prefix``, Outlook's ``divRplyFwdMsg`` and what
  follows it) get ``data-vd-quote``. The result goes through nh3 a second time with only
  those three marker attributes added, so whatever the rewriting did, the stored text is
  within the allowlist.
* **At display** ``render_mail_html`` resolves the markers for one viewer: inline images to an
  authenticated URL, remote images to their URL only when the agent asked for them for that
  entry (``remote_allowed``), quote containers folded into ``<details>``. It sanitises once
  more (cheap insurance: rows written before a sanitiser fix, or by hand, are shown safely).

``split_quoted`` is the plain-text counterpart: top-posted history ("On ... wrote:",
"Am ... schrieb ...:", "-----Original Message-----", Outlook's "From:/Von: ... Sent:/Gesendet:"
header blocks), a trailing block of ``>`` lines and the signature after ``-- `` are folded.
Quoted lines interleaved with new text are left alone: an answer written between the quoted
lines is new text. quotequail and talon were considered; quotequail keeps the attribution line
in the new part and knows no German or signatures, talon is unmaintained since 2017.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3

# -- the allowlist -------------------------------------------------------------------------

_TAGS = {
    "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em",
    "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark",
    "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "summary",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var",
}  # fmt: skip
# Removed with everything inside them, not just unwrapped.
_CLEAN_CONTENT = {"script", "style", "title", "head", "noscript", "template", "xmp", "noembed",
                  "noframes", "iframe", "object", "embed", "svg", "math", "select", "textarea",
                  "button", "option"}  # fmt: skip
_COMMON_ATTRS = {"title", "lang", "dir", "align", "valign", "style"}
_ATTRS: dict[str, set[str]] = {
    "*": _COMMON_ATTRS | {"id", "class"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap"},
    "th": {"width", "height", "colspan", "rowspan", "bgcolor", "nowrap", "scope"},
    "tr": {"bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
    "blockquote": {"cite", "type"},
    "q": {"cite"},
    "details": {"open"},
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
_REMOTE_SCHEMES = ("http:", "https:")

# Markers the desk itself writes; the sender's own data-* attributes never survive pass one.
INLINE_ATTR = "data-vd-inline"
REMOTE_ATTR = "data-vd-remote"
QUOTE_ATTR = "data-vd-quote"

# Ids and classes only matter to find quote containers; everything else is dropped so a
# mail cannot borrow the desk's own CSS classes or ids.
_QUOTE_CLASSES = {"gmail_quote", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote",
                  "OutlookMessageHeader", "WordSection1_quote"}  # fmt: skip
_QUOTE_IDS = {"divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container"}
# Outlook writes the reply header and the old message as siblings after this marker.
_FOLD_REST_IDS = {"divRplyFwdMsg", "appendonsend"}
# Desktop Outlook (Word HTML) has no id: its reply header sits in a div with this top rule.
_OUTLOOK_RULE = re.compile(r"border-top:\s*solid\s+#(?:E1E1E1|B5C4DF)", re.I)

# -- style attributes ----------------------------------------------------------------------

_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "letter-spacing", "word-spacing", "line-height", "white-space",
    "vertical-align", "direction", "unicode-bidi", "margin", "margin-top", "margin-right",
    "margin-bottom", "margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-collapse", "border-spacing",
    "border-radius", "width", "max-width", "min-width", "height", "max-height", "min-height",
    "list-style-type", "table-layout", "word-wrap", "overflow-wrap", "word-break",
    "display", "float", "clear",
}  # fmt: skip
_STYLE_VALUE = re.compile(r"[\w\s#%.,+\-!'\"/()]*")
_STYLE_FUNCTION = re.compile(r"([\w-]*)\s*\(")
_STYLE_FUNCTIONS_OK = {"rgb", "rgba", "hsl", "hsla"}


def _clean_style(value: str) -> str | None:
    """Keep declarations that only paint: no function but colours, no escapes, no comments."""
    kept: list[str] = []
    for declaration in value.split(";"):
        name, sep, val = declaration.partition(":")
        name, val = name.strip().lower(), val.strip()
        if not sep or name not in _STYLE_PROPERTIES or not val:
            continue
        if not _STYLE_VALUE.fullmatch(val) or "/*" in val:
            continue
        if any(f.lower() not in _STYLE_FUNCTIONS_OK for f in _STYLE_FUNCTION.findall(val)):
            continue
        if name == "display" and val.lower() not in {
            "block",
            "inline",
            "inline-block",
            "none",
            "table",
            "table-cell",
            "table-row",
        }:
            continue
        kept.append(f"{name}: {val}")
    return "; ".join(kept) or None


def _first_pass_filter(tag: str, attr: str, value: str) -> str | None:
    """nh3's callback on every attribute that survived the allowlist."""
    if attr == "style":
        return _clean_style(value)
    if attr == "href":
        return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
    if attr == "src":
        low = value.strip().lower()
        return value.strip() if low.startswith(("cid:", *_REMOTE_SCHEMES)) else None
    if attr in ("cite",):
        return None  # a URL the browser may fetch for no reason of the agent
    if attr == "id":
        return value if value in _QUOTE_IDS else None
    if attr == "class":
        kept = [c for c in value.split() if c in _QUOTE_CLASSES]
        return " ".join(kept) or None
    if attr == "type" and tag == "blockquote":
        return value if value.lower() == "cite" else None
    return value


def _nh3_first(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRS,
        attribute_filter=_first_pass_filter,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        url_schemes=_URL_SCHEMES,
        url_relative="deny",
    )


def _final_attrs(extra: Mapping[str, set[str]]) -> dict[str, set[str]]:
    attrs = {tag: set(names) - {"id", "class", "src", "cite"} for tag, names in _ATTRS.items()}
    attrs["*"] = set(_COMMON_ATTRS) | {QUOTE_ATTR}
    for tag, names in extra.items():
        attrs.setdefault(tag, set()).update(names)
    return attrs


def _final_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        return _clean_style(value)
    if attr == "href":
        return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
    if attr == "type" and tag == "blockquote":
        return None
    return value


def _nh3_final(html: str, extra: Mapping[str, set[str]], filt: Callable[..., str | None]) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_final_attrs(extra),
        attribute_filter=filt,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        url_schemes={"http", "https", "mailto", "tel"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


# -- rewriting nh3's (well-formed) output ---------------------------------------------------

_VOID = {"br", "hr", "img", "col", "wbr", "area", "base", "input", "link", "meta", "source"}


def _attrs_html(attrs: list[tuple[str, str | None]]) -> str:
    return "".join(
        f" {name}" if value is None else f' {name}="{escape(value, quote=True)}"'
        for name, value in attrs
    )


class _Rewriter(HTMLParser):
    """Re-serialises nh3's output tag by tag, letting a subclass change start tags.

    nh3 emits balanced, escaped HTML, so a streaming pass is enough; its output is sanitised
    again afterwards, so a mistake here cannot let anything through.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start(tag, attrs)
        if tag in _VOID:
            self.end_void(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.end(tag)

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(f"<{tag}{_attrs_html(attrs)}>")

    def end(self, tag: str) -> None:
        self.out.append(f"</{tag}>")

    def end_void(self, tag: str) -> None:
        """A void element ended (nothing to write)."""

    def result(self, html: str) -> str:
        self.feed(html)
        self.close()
        return "".join(self.out)


class _Marker(_Rewriter):
    """Pass two of ingest: images to markers, quote containers marked, ids/classes dropped."""

    def __init__(self, inline: Mapping[str, str]) -> None:
        super().__init__()
        self.inline = {_cid_key(k): v for k, v in inline.items()}
        self.depth = 0
        self.fold_rest_at: list[int] = []  # depths whose remaining children are quoted
        self.remote = False

    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        ident = values.get("id") or ""
        kept = [(n, v) for n, v in attrs if n not in ("class", "id", "src", "type")]
        if tag == "img":
            kept = self._image(values.get("src") or "", kept)
            if kept is None:
                return
        quoted = (
            (tag == "blockquote")
            or bool(classes & _QUOTE_CLASSES)
            or ident in _QUOTE_IDS
            or (self.fold_rest_at and self.fold_rest_at[-1] == self.depth)
        )
        if ident in _FOLD_REST_IDS or (
            tag == "div" and _OUTLOOK_RULE.search(values.get("style") or "")
        ):
            self.fold_rest_at.append(self.depth)
        if quoted:
            kept.append((QUOTE_ATTR, "1"))
        self.out.append(f"<{tag}{_attrs_html(kept)}>")
        if tag not in _VOID:
            self.depth += 1

    def end(self, tag: str) -> None:
        self.depth -= 1
        while self.fold_rest_at and self.fold_rest_at[-1] > self.depth:
            self.fold_rest_at.pop()
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.fold_rest_at and self.fold_rest_at[-1] == self.depth and data.strip():
            # Bare text after Outlook's marker (its old message) is history too.
            self.out.append(f'<span {QUOTE_ATTR}="1">{escape(data, quote=False)}</span>')
        else:
            super().handle_data(data)

    def _image(
        self, src: str, kept: list[tuple[str, str | None]]
    ) -> list[tuple[str, str | None]] | None:
        low = src.strip().lower()
        if low.startswith("cid:"):
            public_id = self.inline.get(_cid_key(src.strip()[4:]))
            if public_id is None:
                return None  # points at no part we stored: nothing to show
            return [*kept, (INLINE_ATTR, public_id)]
        if low.startswith(_REMOTE_SCHEMES):
            self.remote = True
            return [*kept, (REMOTE_ATTR, src.strip())]
        return None


def _cid_key(cid: str) -> str:
    from urllib.parse import unquote

    return unquote(cid).strip().strip("<>").lower()


def sanitise_mail_html(html: str, inline: Mapping[str, str]) -> str:
    """Make a mail's HTML body safe to store and show, with images as inert markers.

    ``inline`` maps content-id (without ``<>``) to the ``VaultFile.public_id`` of the inline
    image stored at ingest. See the module docstring for what is kept and why.
    """
    first = _nh3_first(html or "")
    return sanitise_stored_mail_html(_Marker(inline).result(first))


def sanitise_stored_mail_html(html: str) -> str:
    """The stored form's allowlist alone: idempotent on ``sanitise_mail_html``'s output.

    For code that stores a body already made by ``sanitise_mail_html`` and sanitises
    whatever it stores (``tickets.stream.entry_row``): a general-purpose pass would strip
    the image markers, and a general allowlist would keep remote ``src`` attributes.
    """
    return _nh3_final(html or "", {"img": {INLINE_ATTR, REMOTE_ATTR}}, _final_filter).strip()


def has_remote_images(body_html: str | None) -> bool:
    """Whether a stored body carries remote-image markers (for the "show" button)."""
    return bool(remote_image_urls(body_html))


def remote_image_urls(body_html: str | None) -> list[str]:
    """The remote image URLs of a stored body, for the page's Content-Security-Policy."""
    collector = _RemoteCollector()
    collector.result(sanitise_stored_mail_html(body_html or ""))  # well-formed for the parser
    return collector.urls


class _RemoteCollector(_Rewriter):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            url = dict(attrs).get(REMOTE_ATTR)
            if url and url.lower().startswith(_REMOTE_SCHEMES):
                self.urls.append(url)


_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


def csp_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or None when it is not plainly one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or not _HOST.fullmatch(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


# -- display ---------------------------------------------------------------------------------


class _Display(_Rewriter):
    """Resolves markers; consecutive quoted siblings share one ``<details>`` fold."""

    def __init__(
        self, inline_url: Callable[[str], str | None], remote_allowed: bool, summary: str
    ) -> None:
        super().__init__()
        self.inline_url = inline_url
        self.remote_allowed = remote_allowed
        self.summary = summary
        self.depth = 0
        self.fold_depth: int | None = None  # depth of the open <details>
        self.inside = False  # within a quoted element (not just between quoted siblings)

    def _close_fold(self) -> None:
        self.out.append("</details>")
        self.fold_depth = None

    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        kept = [(n, v) for n, v in attrs if n not in (INLINE_ATTR, REMOTE_ATTR, QUOTE_ATTR, "src")]
        if tag == "img":
            if values.get(INLINE_ATTR):
                url = self.inline_url(values[INLINE_ATTR] or "")
                if url is None:
                    return
                kept.append(("src", url))
            elif values.get(REMOTE_ATTR):
                if self.remote_allowed:
                    kept.append(("src", values[REMOTE_ATTR] or ""))
                else:
                    kept.append(("class", "mail-remote-image"))
        quoted = QUOTE_ATTR in values
        if self.fold_depth is not None and not self.inside and self.depth == self.fold_depth:
            if not quoted:
                self._close_fold()
        if quoted and self.fold_depth is None:
            self.fold_depth = self.depth
            self.out.append(
                f'<details class="mail-quoted"><summary>{escape(self.summary)}</summary>'
            )
        if quoted and self.depth == self.fold_depth:
            self.inside = tag not in _VOID
        self.out.append(f"<{tag}{_attrs_html(kept)}>")
        if tag not in _VOID:
            self.depth += 1

    def handle_data(self, data: str) -> None:
        if (
            self.fold_depth is not None
            and not self.inside
            and self.depth == self.fold_depth
            and data.strip()
        ):
            self._close_fold()
        super().handle_data(data)

    def end(self, tag: str) -> None:
        self.depth -= 1
        if self.fold_depth is not None and self.depth < self.fold_depth:
            self._close_fold()  # the parent ends: so does the fold
        self.out.append(f"</{tag}>")
        if self.fold_depth is not None and self.depth == self.fold_depth:
            self.inside = False

    def result(self, html: str) -> str:
        text = super().result(html)
        return text + "</details>" if self.fold_depth is not None else text


def render_mail_html(
    body_html: str,
    *,
    inline_url: Callable[[str], str | None],
    remote_allowed: bool,
    quoted_summary: str,
) -> str:
    """The stored body made showable for one viewer (see the module docstring).

    ``inline_url`` maps an inline image's public id to the URL this viewer may load it from,
    or None when it is not theirs to see. The result is sanitised again before it is shown.
    """
    # The stored allowlist first: the rewriter then only ever reads nh3's well-formed output,
    # also for a row that was stored unsanitised.
    stored = sanitise_stored_mail_html(body_html or "")
    resolved = _Display(inline_url, remote_allowed, quoted_summary).result(stored)
    return nh3.clean(
        resolved,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes={
            **_final_attrs({"img": {"src"}}),
            "img": _final_attrs({"img": {"src", "class"}})["img"],
            "details": {"class"},
        },
        attribute_filter=_display_filter(remote_allowed),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        url_schemes={"http", "https", "mailto", "tel"},
        url_relative="pass_through",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def _display_filter(remote_allowed: bool) -> Callable[[str, str, str], str | None]:
    def filt(tag: str, attr: str, value: str) -> str | None:
        if attr == "src":
            if value.startswith("/") and not value.startswith("//"):
                return value  # our own inline-image route
            if remote_allowed and value.lower().startswith(_REMOTE_SCHEMES):
                return value
            return None
        if attr == "class":
            return value if value in ("mail-remote-image", "mail-quoted") else None
        if attr == "href":
            return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
        if attr == "style":
            return _clean_style(value)
        return value

    return filt


# -- plain text ------------------------------------------------------------------------------

_ATTRIBUTION = [
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.I | re.S),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.I | re.S),
    re.compile(r"^\s*Le\b.{0,300}\ba écrit\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|"
               r"Originalnachricht)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above the header block
]  # fmt: skip
_HEADER_FROM = re.compile(r"^\s*\*?(From|Von|De)\s*:\*?\s*\S", re.I)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(Sent|Gesendet|Date|Datum|Envoyé|To|An|Subject|Betreff|Objet|Cc)\s*:", re.I
)
_SIGNATURE = re.compile(r"^-- ?$")


def _is_header_block(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 5] if line.strip()]
    return sum(1 for line in following if _HEADER_NEXT.match(line)) >= 2


def split_quoted(text: str) -> tuple[str, str]:
    """Split a plain-text body into (what is new, quoted history and signature).

    The second part is kept verbatim, so nothing is lost: the display folds it away behind
    "show quoted text". When nothing would remain of the new part (a forwarded message, a
    mail that is all quote), nothing is folded.
    """
    source = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = source.split("\n")
    cut: int | None = None
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line):
            cut = i
            break
        joined = line if i + 1 >= len(lines) else f"{line} {lines[i + 1]}"
        if any(p.match(line) for p in _ATTRIBUTION) or _is_header_block(lines, i):
            cut = i
            break
        if line.startswith("On ") and any(p.match(joined) for p in _ATTRIBUTION[:1]):
            cut = i
            break
        if line.lstrip().startswith(">") and _only_quotes_after(lines, i):
            cut = i
            break
    if cut is None:
        return source, ""
    new = "\n".join(lines[:cut]).rstrip()
    if not new.strip():
        return source, ""
    return new, "\n".join(lines[cut:]).strip("\n")


def _only_quotes_after(lines: list[str], start: int) -> bool:
    for line in lines[start:]:
        if _SIGNATURE.match(line):
            return True
        if line.strip() and not line.lstrip().startswith(">"):
            return False
    return True
