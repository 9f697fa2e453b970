"""The bracket scanner and the link regex were rewritten for speed; on any text they must give what
the plain versions give (restated here as they were)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from queries.dump import iter_pages
from queries.wikitext import _link_text, remove_nested, resolve_links

_BRACKET = re.compile(r"\{\{|\}\}|^[ \t:]*\{\||^[ \t]*\|\}", re.MULTILINE)
_INNER_LINK = re.compile(r"\[\[((?:[^\[\]]|\[(?!\[)|\](?!\]))*)\]\]")


def reference_remove_nested(text: str) -> str:
    kept: list[str] = []
    stack: list[str] = []
    start = pos = 0
    while (match := _BRACKET.search(text, pos)) is not None:
        token = match.group().strip(" \t:")
        pos = match.end()
        if token in ("{{", "{|"):
            if not stack:
                kept.append(text[start : match.start()])
            stack.append(token)
            continue
        opener = "{{" if token == "}}" else "{|"
        if opener not in stack:
            if token == "|}":
                pos = match.end() - 1
            continue
        while stack.pop() != opener:
            pass
        if not stack:
            start = pos
    if not stack:
        kept.append(text[start:])
    return "".join(kept)


def reference_resolve_links(text: str) -> str:
    while True:
        replaced = _INNER_LINK.sub(_link_text, text)
        if replaced == text:
            return replaced
        text = replaced


# Markup pieces that interact: brackets of both kinds, line starts with indentation, pipes, links.
MARKUP = st.lists(st.sampled_from(["{{", "}}", "{|", "|}", "{", "}", "|", "\n", " ", "\t", ":", "x", "ab",
                                   "[[", "]]", "[", "]", "File:", "a|b", "(q)", "de:", "\r", "|}}", "{{{",
                                   "\n:", "\n ", "\n\t", "\n{|", "\n|}", "\n:{|", "\n:|}", "\n |}"]),
                  max_size=40).map("".join)


@settings(max_examples=2000, deadline=None)
@given(MARKUP)
@example("{|\n:|}\nx")  # a colon may indent a table's start, not its end
@example("{|\n \t|}\nx\n: {|\na\n|}}y")
@example("{{a\n|}}\nb")  # `|}}` closing a template
@example("x{|}\n{|}|}\n|}z")
def test_remove_nested_equals_reference(text):
    assert remove_nested(text) == reference_remove_nested(text)


@settings(max_examples=2000, deadline=None)
@given(MARKUP)
def test_resolve_links_equals_reference(text):
    assert resolve_links(text) == reference_resolve_links(text)


@given(st.text(max_size=80))
def test_any_text(text):
    assert remove_nested(text) == reference_remove_nested(text)
    assert resolve_links(text) == reference_resolve_links(text)


def test_real_articles(excerpt, table_markup):
    for path in (excerpt, table_markup):
        for page in iter_pages(path):
            assert remove_nested(page.text) == reference_remove_nested(page.text), page.title
            assert resolve_links(page.text) == reference_resolve_links(page.text), page.title
