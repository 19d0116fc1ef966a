"""Peer words inside markdown elements are shown as typed: CommonMark (markdown-it-py, the
reference rules Streamlit's renderer follows for escapes) turns the escaped text back into
exactly the original characters, with no element of its own."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from plain import plain

HOSTILE = [
    "![x](http://example.invalid/a.png)",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` $x^2$ :red[red] :smile: [link](http://example.invalid)",
    "a\\b # not a heading | not | a table ~~no~~ <http://example.invalid>",
    "1. not a list",
    "no file ![y](//example.invalid/t.gif) in room 4821",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_peer_text_in_a_markdown_element_is_shown_literally(text: str) -> None:
    rendered = MarkdownIt("commonmark").render(plain(text)).strip()
    assert rendered.startswith("<p>") and rendered.endswith("</p>")
    inner = rendered[len("<p>") : -len("</p>")]
    assert re.search(r"<[a-z]", inner) is None  # no element: no image, link or emphasis
    assert html.unescape(inner) == text
