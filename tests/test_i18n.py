"""The interface speaks English and German; every extracted string has a German text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

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
