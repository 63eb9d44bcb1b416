"""The interface speaks English and German; every extracted string has a German text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

ROOT = Path(__file__).parent.parent
CATALOG = ROOT / "app/translations/de/LC_MESSAGES"
METHODS = [("**.py", "python"), ("**.html", "jinja2"), ("**.txt", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def source_messages() -> set[str]:
    found: set[str] = set()
    for folder in ("app", "templates"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, METHODS, keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def _key(message_id: str | tuple[str, ...]) -> str:
    return message_id[0] if isinstance(message_id, tuple | list) else message_id


def _done(string: str | tuple[str, ...]) -> bool:
    return all(string) if isinstance(string, tuple | list) else bool(string)


def test_every_string_in_the_code_has_a_german_translation() -> None:
    with open(CATALOG / "messages.po", "rb") as handle:
        catalog = read_po(handle, locale="de")
    translated = {_key(m.id): m.string for m in catalog if m.id and _done(m.string) and not m.fuzzy}
    missing = sorted(source_messages() - set(translated))
    assert missing == [], "run scripts/translations and translate: " + repr(missing[:10])


def test_the_compiled_catalog_is_current() -> None:
    with open(CATALOG / "messages.po", "rb") as handle:
        po = {
            _key(m.id): tuple(m.string) if isinstance(m.string, list | tuple) else m.string
            for m in read_po(handle, locale="de")
            if m.id and _done(m.string)
        }
    with open(CATALOG / "messages.mo", "rb") as handle:
        mo = {
            _key(m.id): tuple(m.string) if isinstance(m.string, list | tuple) else m.string
            for m in read_mo(handle)
            if m.id
        }
    assert mo == po, "run scripts/translations to compile the catalog"


def test_pages_render_in_german(client: Any) -> None:
    page = client.get("/portal/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "<h1>Kundenportal</h1>" in page and "E-Mail-Adresse" in page and ">Anmelden<" in page
    english = client.get("/portal/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "<h1>Support portal</h1>" in english


class _LiteralText(HTMLParser):
    """Text a reader sees (and the attributes read aloud) in a template's literal HTML."""

    SPOKEN = {"placeholder", "title", "aria-label", "alt"}
    SILENT = {"script", "style", "kbd", "code"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.silent = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SILENT:
            self.silent += 1
        self.found += [v for k, v in attrs if k in self.SPOKEN and v and _WORD.search(v)]

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SILENT:
            self.silent = max(0, self.silent - 1)

    def handle_data(self, data: str) -> None:
        if not self.silent and _WORD.search(data):
            self.found.append(data.strip())


_WORD = re.compile(r"[A-Za-zÄÖÜäöüß]{2,}")
BRAND = "Vaultdesk"


def literal_english(source: str) -> list[str]:
    """Words in a template outside any {{ }} or {% %}: text nobody can translate."""
    environment = Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    html = "".join(
        value.replace(BRAND, "") for _line, kind, value in environment.lex(source) if kind == "data"
    )
    parser = _LiteralText()
    parser.feed(html)
    return parser.found


def test_no_template_shows_text_outside_the_catalog() -> None:
    """Every staff, portal and link page speaks German: no literal English left in a template."""
    untranslated = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if (found := literal_english(path.read_text()))
    }
    assert untranslated == {}, "wrap these in _(): " + repr(untranslated)


def test_the_literal_text_check_sees_english() -> None:
    assert literal_english('<p title="Open it">Hello {{ name }}</p>') == ["Open it", "Hello"]
    assert literal_english('<p>{{ _("Hello") }} · {{ n }}</p><kbd>Esc</kbd>') == []
