"""What a received mail may show: the sanitiser against real attack payloads, image markers,
quote folding in HTML and plain text.

The payloads are other people's (tests/data/html, see its README): DOMPurify's fixtures and
the HTML5 Security Cheatsheet. Outputs are checked by parsing them, not by looking for
substrings, so an encoded or oddly-cased construct cannot hide.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.mail.content import (
    INLINE_ATTR,
    QUOTE_ATTR,
    REMOTE_ATTR,
    csp_origin,
    remote_image_urls,
    render_mail_html,
    sanitise_mail_html,
    sanitise_stored_mail_html,
    split_quoted,
)

DATA = Path(__file__).parent / "data" / "html"


def _payloads() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for i, case in enumerate(json.loads((DATA / "xss_dompurify" / "expect.json").read_text())):
        cases.append((f"dompurify-{i}", case["payload"]))
    for case in json.loads((DATA / "xss_h5sc" / "items.json").read_text()):
        cases.append((f"h5sc-{case['id']}", case["data_expanded"]))
    return cases


PAYLOADS = _payloads()

FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form",
    "input", "button", "textarea", "select", "option", "svg", "math", "base", "meta", "link",
    "template", "noscript", "xmp", "isindex", "video", "audio", "source", "image", "use",
}  # fmt: skip
FORBIDDEN_ATTRS = {
    "srcset", "formaction", "action", "xlink:href", "background", "dynsrc", "lowsrc", "ping",
    "poster", "data", "codebase", "cite", "longdesc", "usemap", "id", "name", "for", "is",
    "contenteditable", "autofocus", "srcdoc",
}  # fmt: skip
SAFE_LINK = re.compile(r"(https?|mailto|tel):", re.I)
BAD_STYLE = re.compile(r"url\s*\(|expression|@import|\\|behavio|binding|image-set|/\*", re.I)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def _problems(output: str, *, allowed_src: re.Pattern[str] | None = None) -> list[str]:
    """Every dangerous construct left in ``output``, parsed as a browser-like tokenizer would."""
    parser = _Collect()
    parser.feed(output)
    parser.close()
    found: list[str] = []
    if parser.comments:
        found.append("comment")
    for tag, attrs in parser.tags:
        if tag in FORBIDDEN_TAGS:
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            text = re.sub(r"[\x00-\x20]", "", htmllib.unescape(value or ""))
            if name.startswith("on") or name in FORBIDDEN_ATTRS:
                found.append(f"{tag}[{name}]")
            elif name == "href" and not SAFE_LINK.match(text):
                found.append(f"{tag}[href={text!r}]")
            elif name == "src" and (allowed_src is None or not allowed_src.fullmatch(text)):
                found.append(f"{tag}[src={text!r}]")
            elif name == "style" and BAD_STYLE.search(value or ""):
                found.append(f"{tag}[style={value!r}]")
            elif name == REMOTE_ATTR and not re.match(r"https?:", text, re.I):
                found.append(f"{tag}[{name}={text!r}]")
            elif name.startswith("data-") and name not in (INLINE_ATTR, REMOTE_ATTR, QUOTE_ATTR):
                found.append(f"{tag}[{name}]")
        if tag == "a" and "noopener" not in (attrs.get("rel") or ""):
            found.append("a without rel=noopener")
    return found


def test_the_payload_sets_are_there() -> None:
    assert len(PAYLOADS) > 350


@pytest.mark.parametrize(("name", "payload"), PAYLOADS, ids=[n for n, _ in PAYLOADS])
def test_no_dangerous_construct_survives_the_sanitiser(name: str, payload: str) -> None:
    stored = sanitise_mail_html(payload, {"a@b": "PUB"})
    assert _problems(stored) == []
    # Storing sanitises again (tickets.stream): that must keep the stored form as it is.
    assert sanitise_stored_mail_html(stored) == stored
    for remote in (False, True):
        shown = render_mail_html(
            stored,
            inline_url=lambda pid: f"/agent/files/inline/{pid}",
            remote_allowed=remote,
            quoted_summary="Show quoted text",
        )
        allowed = re.compile(r"/agent/files/inline/\w+" + (r"|https?:.*" if remote else ""))
        assert _problems(shown, allowed_src=allowed) == []
        # A row stored unsanitised (before a fix, by hand) is shown just as safely.
        raw_shown = render_mail_html(
            payload, inline_url=lambda _: None, remote_allowed=remote, quoted_summary="q"
        )
        assert _problems(raw_shown, allowed_src=re.compile(r"https?:.*" if remote else "")) == []
    remote_image_urls(payload)  # malformed markup never breaks the page that asks


def test_the_checker_sees_what_it_must() -> None:
    """The structural checker itself flags the constructs, encoded or not."""
    assert _problems('<img src=x onerror="alert(1)">')
    assert _problems('<a href="jav&#x09;ascript:alert(1)">x</a>')
    assert _problems('<p style="background:u\\72l(http://x)">x</p>')
    assert _problems("<svg><script>alert(1)</script></svg>")
    assert _problems('<a href="https://x" rel="noopener">ok</a>') == []


def test_what_a_mail_keeps() -> None:
    out = sanitise_mail_html(
        '<p style="color: red; background-image: url(http://t.example/x)" class="x">'
        '<b>Hello</b> <a href="https://example.org/a?b=1">site</a> '
        '<a href="/agent/tickets">ours</a> <a href="mailto:a@example.org">mail</a></p>'
        "<table><tr><td bgcolor=#eee>cell</td></tr></table>",
        {},
    )
    assert '<p style="color: red">' in out
    assert "<b>Hello</b>" in out
    assert (
        '<a href="https://example.org/a?b=1" target="_blank" rel="noopener noreferrer nofollow">'
        in out
    )
    assert '<a href="mailto:a@example.org"' in out
    # A relative link would point an agent at the desk's own URLs: it loses its href.
    assert "/agent/tickets" not in out
    assert '<td bgcolor="#eee">cell</td>' in out


def test_images_become_markers_never_active_sources() -> None:
    out = sanitise_mail_html(
        '<img src="cid:Logo@Example" alt="logo"><img src="cid:unknown@x">'
        '<img src="https://t.example/pixel.gif" width=1><img src="data:image/png;base64,AAAA">'
        '<img src="//t.example/x.gif">',
        {"logo@example": "PUBLIC1"},
    )
    parser = _Collect()
    parser.feed(out)
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert images == [
        {"alt": "logo", INLINE_ATTR: "PUBLIC1"},
        {"width": "1", REMOTE_ATTR: "https://t.example/pixel.gif"},
    ]
    assert remote_image_urls(out) == ["https://t.example/pixel.gif"]


def test_a_mail_cannot_forge_the_desks_markers() -> None:
    """Markers come only from the sanitiser: a sender's own data-vd-* attributes are dropped."""
    out = sanitise_mail_html(
        '<img data-vd-inline="OTHER-TICKETS-FILE" alt="a">'
        '<p data-vd-quote="1">new text</p><img src="cid:x@y" data-vd-remote="https://t.example/">',
        {},
    )
    assert out == "<p>new text</p>"  # an image with no source of ours is no image


def test_display_resolves_inline_and_remote_only_when_asked() -> None:
    stored = sanitise_mail_html(
        '<p>x</p><img src="cid:a@b"><img src="cid:c@d"><img src="http://t.example:8080/p.gif">',
        {"a@b": "MINE", "c@d": "NOTMINE"},
    )

    def url(public_id: str) -> str | None:
        return "/f/MINE" if public_id == "MINE" else None

    blocked = render_mail_html(stored, inline_url=url, remote_allowed=False, quoted_summary="q")
    assert '<img src="/f/MINE">' in blocked
    assert "NOTMINE" not in blocked
    assert "t.example" not in blocked  # not even as an attribute the page could read
    assert '<img class="mail-remote-image">' in blocked
    shown = render_mail_html(stored, inline_url=url, remote_allowed=True, quoted_summary="q")
    assert '<img src="http://t.example:8080/p.gif">' in shown
    assert csp_origin("http://t.example:8080/p.gif") == "http://t.example:8080"
    assert csp_origin("javascript:alert(1)") is None
    assert csp_origin("https://a b/") is None


def test_display_never_trusts_a_src_in_the_stored_body() -> None:
    """A row written before a fix, or by hand, still shows no active image source."""
    shown = render_mail_html(
        '<img src="https://evil.example/x"><img src="/agent/logout"><a href="/x">r</a>',
        inline_url=lambda _: None,
        remote_allowed=False,
        quoted_summary="q",
    )
    assert "src" not in shown
    assert "href" not in shown


@pytest.mark.parametrize(
    ("html", "visible"),
    [
        (
            '<div>Thanks!</div><div class="gmail_quote"><div>On Mon, Bob wrote:</div>'
            "<blockquote>old text</blockquote></div>",
            "<div>Thanks!</div>",
        ),
        (
            "<p>Danke</p><blockquote type=cite>alt</blockquote>",
            "<p>Danke</p>",
        ),
        (
            '<div>See below</div><hr><div id="divRplyFwdMsg"><b>From:</b> Bob<br><b>Sent:</b> '
            "Monday</div><div>old message</div>",
            "<div>See below</div><hr>",
        ),
        (
            '<div class="WordSection1"><p class="MsoNormal">Done.</p>'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
            '<p class="MsoNormal"><b>From:</b> Support<br><b>Sent:</b> Monday</p></div>'
            '<p class="MsoNormal">old question</p></div>',
            "<div><p>Done.</p>",
        ),
    ],
)
def test_quoted_html_is_folded_not_lost(html: str, visible: str) -> None:
    stored = sanitise_mail_html(html, {})
    shown = render_mail_html(
        stored, inline_url=lambda _: None, remote_allowed=False, quoted_summary="Show quoted text"
    )
    before, _, folded = shown.partition('<details class="mail-quoted">')
    assert before == visible
    assert folded.startswith("<summary>Show quoted text</summary>")
    assert shown.count("<details") == 1
    assert re.fullmatch(r".*</details>(</\w+>)*", shown, re.S)  # nothing visible after it
    assert re.search(r"old|alt", folded)


def test_text_after_a_quote_stays_visible() -> None:
    stored = sanitise_mail_html("<blockquote>q1</blockquote><p>my answer</p>", {})
    shown = render_mail_html(stored, inline_url=lambda _: None, remote_allowed=False,
                             quoted_summary="s")  # fmt: skip
    assert shown.endswith("</details><p>my answer</p>")


@pytest.mark.parametrize(
    ("text", "new", "quoted_starts"),
    [
        (
            "Works now.\n\nOn Tue, 1 Dec 2026 at 10:00, Support <s@x.example> wrote:\n> Try it\n",
            "Works now.",
            "On Tue",
        ),
        (
            "Works now.\nOn Tue, 1 Dec 2026 at 10:00, Support <\ns@x.example> wrote:\n> Try\n",
            "Works now.",
            "On Tue",
        ),
        ("Geht.\n\nAm 01.12.2026 um 10:00 schrieb Support <s@x.example>:\n> alt", "Geht.", "Am"),
        ("Ok\n\n-----Original Message-----\nFrom: S\nSent: Mon\n\nold", "Ok", "-----Original"),
        ("Ok\n\nVon: S\nGesendet: Montag\nAn: x\nBetreff: y\n\nalt", "Ok", "Von:"),
        ("Ok\n\nFrom: S <s@x>\nSent: Monday\nTo: x\nSubject: y\n\nold", "Ok", "From:"),
        ("Ok\n________________________________\nFrom: S\nSent: M\n", "Ok", "_____"),
        ("Ok\n\n> quoted\n> more\n", "Ok", "> quoted"),
        ("Ok\r\n-- \r\nBob\r\nACME Ltd", "Ok", "-- \nBob"),
    ],
)
def test_plain_text_history_and_signature_fold(text: str, new: str, quoted_starts: str) -> None:
    got_new, got_quoted = split_quoted(text)
    assert got_new == new
    assert got_quoted.startswith(quoted_starts)


@pytest.mark.parametrize(
    "text",
    [
        "> did you restart?\nyes\n> and then?\nit worked",  # answers between the quotes
        "-----Original Message-----\nFrom: a\nSent: b\nTo: c\n\nforwarded only",  # all history
        "Just a plain message\nwith two lines",
        "",
    ],
)
def test_plain_text_that_is_all_new_stays_whole(text: str) -> None:
    assert split_quoted(text) == (text, "")


# Fragments attackers and broken mailers combine; hypothesis mixes them with noise.
_PIECES = [
    "<", ">", "/", "=", '"', "'", "`", " ", "\n", "\x00", "&#x6A;", "&lt;", "<!--", "-->",
    "<![CDATA[", "]]>", "<!", "<?", "<script>", "</script>", "<img", " src=", "cid:a@b",
    "javascript:", "java\tscript:", "data:text/html,", "https://t.example/x.gif", " onerror=",
    " style=", "url(", "expression(", "@import", "\\", "<a href=", "<svg", "<math", "<style>",
    "</style>", "<blockquote>", "</blockquote>", '<div class="gmail_quote">', "</div>",
    '<div id="divRplyFwdMsg">', "<table>", "<td background=", "<form>", "<iframe srcdoc=",
    "<details open ontoggle=", "<noscript>", "<xmp>", "<plaintext>", "<template>", "alert(1)",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=8)), max_size=40))
def test_mangled_html_never_escapes_the_allowlist(pieces: list[str]) -> None:
    html = "".join(pieces)
    stored = sanitise_mail_html(html, {"a@b": "PUB"})
    assert _problems(stored) == []
    assert sanitise_stored_mail_html(stored) == stored
    shown = render_mail_html(
        html, inline_url=lambda _: "/i/x", remote_allowed=True, quoted_summary="q"
    )
    assert _problems(shown, allowed_src=re.compile(r"/i/x|https?:.*")) == []
