"""Wikitext -> plain text: markup cases by construction, then the real excerpts."""

from __future__ import annotations

import pytest

from queries.dump import iter_pages
from queries.wikitext import to_plain_text


@pytest.mark.parametrize(
    ("wikitext", "plain"),
    [
        # templates nest; a naive `\{\{.*?\}\}` would leave "}} b"
        ("a {{cite web|title={{lang|fr|x}}|url=y}} b", "a b"),
        # prose templates keep their words (the quantity in its source unit, the foreign text)...
        ("It is {{convert|12|km|mi}} long.", "It is 12 km long."),
        ("from {{convert|5|to|7|km|abbr=on}} wide", "from 5 to 7 km wide"),
        ("Paris ({{lang-fr|Ville Lumière}}) and {{lang|de|Die Stadt}}.", "Paris (Ville Lumière) and Die Stadt."),
        ("{{nowrap|New York}} {{Infobox city|name=x}} ok", "New York ok"),
        # ...but not when nested in a template that goes, nor a bare language code
        ("a {{cite|title={{nowrap|kept?}}}} b {{lang|fr}} c", "a b c"),
        ("{{nowrap|[[Foo|bar]] baz}} x", "x"),  # a link inside: its `|` would split it, so dropped
        ("{{Infobox country\n| name = X\n| map = {{map|1}}\n|}}\nText after.", "Text after."),
        # a table inside a template, and a template inside a table
        ("{{Quote box\n{|\n| inner {{x}}\n|}}}\nafter", "after"),
        ("before\n{| class=\"wikitable\"\n|-\n! head\n| {{flag|Spain}} cell\n|}\nafter", "before\nafter"),
        ("x\n:{|\n|a\n{|\n|nested\n|}\n|b\n|}\ny", "x\ny"),
        # links: label, target, link trail, pipe trick
        ("[[Paris|the capital]] and [[London]]s", "the capital and Londons"),
        ("[[Paris (France)|]] is", "Paris is"),
        ("[[:Category:Anarchism|anarchist category]]", "anarchist category"),
        # file captions hold links of their own; the whole file link goes
        ("[[File:Cat.jpg|thumb|A [[cat]] on a [[mat|red mat]] [http://x.org src]]] after", "after"),
        ("[[Image:Map.png|left|200px|Map]]Text", "Text"),
        ("Text [[Category:Anarchism| ]] [[de:Anarchismus]] [[zh-min-nan:Bû-chèng-hú-chú-gī]]", "Text"),
        ("[[wikt:anarchy]] and [[wikt:anarchy|Anarchy]]", "anarchy and Anarchy"),
        # external links and bare URLs
        ("[http://example.com Example site] and https://x.org/y here", "Example site and here"),
        ("see [https://example.com]", "see"),
        # references, comments, drop-content tags, formatting tags
        ('a<ref name="x">{{cite book|title=T}}</ref> b<ref name="y" /> c<ref>plain</ref>', "a b c"),
        ("a <!-- hidden [[x]] --> b", "a b"),
        ("E = <math>mc^2</math> holds", "E = holds"),
        ("Lisbon<br />Portugal<br>and<div>more</div>", "Lisbon Portugal and more"),
        ("'''Bold''' and ''italic'' and <b>b</b> <span style=\"x\">s</span>", "Bold and italic and b s"),
        # headings, lists, magic words, entities, magic links
        ("== History ==\n=== Early ===\n* item one\n# item two", "History\nEarly\nitem one\nitem two"),
        ("__TOC__\nText__NOTOC__", "Text"),
        ("a&nbsp;b &amp; c &lt;ref&gt;", "a b & c <ref>"),
        ("Book, 1998, ISBN 978-0-375-50028-2.", "Book, 1998, ."),
        # back matter goes up to the next heading of the same level
        ("Prose.\n== See also ==\n* [[X]]\n=== Sub ===\nlist\n== Legacy ==\nMore.", "Prose.\nLegacy\nMore."),
        ("Prose.\n==References==\n{{reflist}}\n==External links==\n* [http://a b]", "Prose."),
        # brackets left empty by a dropped template go too
        ("Brahui ({{lang-bra|براہوئی}}) is; Zed ({{IPA|x}}; {{lang|y}}) too", "Brahui is; Zed too"),
        # unbalanced markup: a stray closer stays text, an unclosed template eats the rest
        ("a }} b", "a }} b"),
        ("a {{unclosed b", "a"),
    ],
)
def test_markup_reduced_to_visible_text(wikitext: str, plain: str) -> None:
    assert to_plain_text(wikitext) == plain


@pytest.fixture(scope="module")
def articles(excerpt: str, table_markup: str) -> dict[str, str]:
    return {page.title: to_plain_text(page.text) for path in (excerpt, table_markup)
            for page in iter_pages(path) if page.redirect is None}


def test_anarchism_lead_sentence_is_plain_prose(articles: dict[str, str]) -> None:
    assert articles["Anarchism"].startswith(
        "Anarchism is a political philosophy that advocates self-governed societies based on voluntary "
        "institutions.")
    # "[[Pierre-Joseph Proudhon]]" and "''anarchy''" reduced to their text
    assert "The first political philosopher to call himself an anarchist was Pierre-Joseph Proudhon" in (
        articles["Anarchism"])


@pytest.mark.parametrize("leak", ["{{", "}}", "[[", "]]", "{|", "|}", "|-", "<ref", "</", "<!--",
                                  "File:", "Image:", "Category:", "&nbsp;", "'''", "http", "__TOC__"])
def test_no_markup_leaks_into_any_article(articles: dict[str, str], leak: str) -> None:
    leaking = [title for title, text in articles.items() if leak in text]
    assert leaking == []


def test_table_markup_articles_keep_prose_and_lose_tables(articles: dict[str, str]) -> None:
    design = articles["Academy Award for Best Production Design"]
    assert design.startswith("The Academy Award for Best Production Design recognizes achievement for art "
                             "direction in film.")
    # the winners tables (film names, "wikitable" attributes, row separators) are gone
    assert "wikitable" not in design and "style=" not in design and "rowspan" not in design
    assert "Michael Scofield (played by Wentworth Miller) is the protagonist" in (
        articles["List of Prison Break characters"])
    for text in articles.values():
        assert not any(line.lstrip().startswith(("|", "!")) for line in text.split("\n"))


def test_real_table_articles_read_as_prose(articles: dict[str, str]) -> None:
    # the lead of Brahui language had "({{lang-bra|...}})": no empty brackets are left
    assert articles["Brahui language"].startswith(
        "Brahui is a Dravidian language spoken primarily by the Brahui people in the central part of "
        "Baluchistan province in Pakistan")
    assert not any("()" in text for text in articles.values())
    estonia = articles["Economy of Estonia"]
    assert "with the university city of Tartu known for scientific contributions" in estonia
    # headings survive as their own lines; the "Constructive vote" article keeps its country sections
    assert "\nOverview\n" in estonia and "\nGermany\n" in articles["Constructive vote of no confidence"]
    # 88 kB of winners tables reduce to the two lead paragraphs
    assert len(articles["Academy Award for Best Production Design"]) < 1_500
