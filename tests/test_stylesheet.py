"""The stylesheet parses: one unclosed block silently drops every rule after it."""

from __future__ import annotations

import re
from pathlib import Path

CSS = Path(__file__).parent.parent / "app/static/css/vaultdesk.css"


def nesting_after_each_line(text: str) -> list[tuple[int, int]]:
    depth, seen = 0, []
    for number, line in enumerate(re.sub(r"/\*.*?\*/", "", text, flags=re.S).splitlines(), 1):
        depth += line.count("{") - line.count("}")
        seen.append((number, depth))
    return seen


def test_every_block_of_the_stylesheet_is_closed() -> None:
    seen = nesting_after_each_line(CSS.read_text())
    assert all(depth >= 0 for _line, depth in seen), "a } closes nothing"
    assert seen[-1][1] == 0, "a block is left open: the rules after it are lost"


def test_the_check_sees_an_open_block() -> None:
    assert nesting_after_each_line("a { b: c;\n@media (x) { d { e: f; }\n")[-1][1] == 2
