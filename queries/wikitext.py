"""Reduce wikitext to the prose a reader sees, so that word counts come from text and not markup.

What goes entirely: comments, <ref> citations, <math>/<gallery>/... blocks, templates `{{...}}`
(infoboxes, citations, navboxes: nesting-aware), tables `{| ... |}`, file/image/category links,
interlanguage links, ISBN/PMID magic links and back-matter sections (References, External links,
See also...). What is reduced to its visible text: the few templates that render prose
(`{{convert|12|km}}` -> "12 km", `{{lang|fr|la vie}}` -> "la vie", `{{nowrap|...}}`),
`[[target|label]]` -> label, `[[target]]` -> target, `[http://x label]` -> label, formatting tags
(<b>, <span>...), bold and italic quotes, heading markers, list markers, HTML entities. Lines are
kept, because a line is a paragraph and counting must not join words across paragraphs.
"""

from __future__ import annotations

import html
import re

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_REF_SELF_CLOSING = re.compile(r"<ref\b[^>]*/\s*>", re.IGNORECASE)
# Tags whose whole content is not prose (citations, formulas, image lists, code, score...).
_DROPPED_BLOCK = re.compile(
    r"<(ref|references|math|chem|ce|gallery|timeline|syntaxhighlight|source|score|graph|imagemap"
    r"|mapframe|maplink|hiero|templatedata|templatestyles|categorytree|inputbox|noinclude)\b[^>]*>"
    r".*?</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_BREAK_TAG = re.compile(r"<br\s*/?>|</?(?:p|div|li|td|th|tr)\b[^>]*>", re.IGNORECASE)  # words apart
_TAG = re.compile(r"</?[a-zA-Z][\w:-]*(?:\s[^<>]*)?/?>")  # any remaining tag; its inner text stays
# Brackets that nest: templates and line-start tables. A table row start `|}` inside a template,
# or `}}` inside a table, must close the right opener, so one scanner tracks both kinds. The
# scanner looks for the two-character tokens only (a search led by a literal character, fast) and
# checks by hand that a table bracket starts its line: `^[ \t:]*\{\|` and `^[ \t]*\|\}`.
_BRACKET = re.compile(r"\{[{|]|\}\}|\|\}")
# Templates whose output is prose, kept as their visible words before every other template goes:
# {{convert|12|km|mi}} -> "12 km", {{lang|fr|la vie}} / {{lang-fr|la vie}} -> "la vie",
# {{nowrap|New York}} -> "New York". Innermost only, with no links inside (a link's own `|` would
# split it): other forms are dropped with the templates. Foreign text in another script is dropped
# too ("Brahui ({{lang-bra|براہوئی}})"): it is not English vocabulary.
_PROSE_TEMPLATE = re.compile(
    r"\{\{\s*(convert|cvt|lang|lang-[a-zA-Z-]+|nowrap|nobr|small|smaller|big|transl)\s*\|([^{}\[\]]*)\}\}",
    re.IGNORECASE)
_NON_LATIN_LETTER = re.compile(r"[^\W\d_\u0000-\u024f\u1e00-\u1eff]")
_CONVERT_JOINERS = frozenset(("-", "–", "to", "and", "or", "by", "x", "×", "+", "to(-)"))
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:|mailto:|//)[^\s\[\]]*(?:\s+([^\[\]]*))?\]", re.IGNORECASE)
_BARE_URL = re.compile(r"(?:https?|ftp)://\S+")  # case-sensitive: IGNORECASE makes it 10x slower
# An innermost internal link: no `[[` or `]]` inside, so nested links resolve from the inside out.
# Possessive: the run stops at the first `[[` or `]]` either way, and backtracking from there
# could never end at a `]]`, so giving nothing back matches the same links, twice as fast.
_INNER_LINK = re.compile(r"\[\[((?:[^\[\]]++|\[(?!\[)|\](?!\]))*+)\]\]")
_DROPPED_LINK_PREFIXES = ("file", "image", "category")
_INTERLANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z]{2,8})*$|^simple$")  # de:, zh-min-nan:, simple:
_INTERWIKI = frozenset("wikt wiktionary w wikipedia s wikisource q wikiquote b wikibooks n wikinews "
                       "v wikiversity voy commons c meta m species d wikidata".split())
# Magic links render as "ISBN 0-00-634011-3": bibliography, not prose.
_MAGIC_LINK = re.compile(r"(?:ISBN|PMID|RFC)\b[:\s]*\d[\dXx\- ]*[\dXx]")
# Back-matter sections: citations, link lists and navigation, not prose about the subject.
_BACK_MATTER = frozenset(
    "references|external links|further reading|notes|see also|bibliography|sources|citations"
    "|footnotes|notes and references|references and notes|works cited|general references".split("|")
)
_QUOTES = re.compile(r"''+")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.MULTILINE)
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_LIST_MARKER = re.compile(r"^[*#:;]+\s*", re.MULTILINE)
_HORIZONTAL_RULE = re.compile(r"^-{4,}\s*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n\s*\n+")
# "Brahui ({{lang-bra|...}}) is": brackets a dropped template leaves empty (no words: counts agree)
_EMPTY_PARENS = re.compile(r"[ \t]*\([\s,;:]*\)")
_SPACES = re.compile(r"[ \t\xa0]{2,}|[\t\xa0]")  # a lone space stays: fewer replacements


def to_plain_text(wikitext: str, tidy: bool = True) -> str:
    """The visible prose of an article, one paragraph (or heading, or list item) per line.

    `tidy=False` leaves runs of spaces and blank lines as they are: the same words on the same
    lines, for counting, which does not need them collapsed (and is faster without)."""
    text = _COMMENT.sub("", wikitext)
    text = _REF_SELF_CLOSING.sub("", text)
    text = _DROPPED_BLOCK.sub("", text)
    if "{{" in text:
        text = _PROSE_TEMPLATE.sub(_prose_template_text, text)
    text = remove_nested(text)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = resolve_links(text)
    text = _BREAK_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    if "://" in text:
        text = _BARE_URL.sub("", text)
    text = _MAGIC_LINK.sub("", text)
    text = drop_back_matter(text)
    text = _QUOTES.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _MAGIC_WORD.sub("", text)
    if "----" in text:
        text = _HORIZONTAL_RULE.sub("", text)
    text = _LIST_MARKER.sub("", text)
    # Entities last: `&lt;ref&gt;` in wikitext is literal text, not a tag to remove.
    text = html.unescape(text)
    if not tidy:
        return text
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n", text).strip()


def _prose_template_text(match: re.Match[str]) -> str:
    name = match.group(1).lower()
    args = [a.strip() for a in match.group(2).split("|") if "=" not in a]  # named args are options
    if not args:
        return ""
    if name in ("convert", "cvt"):
        return _convert_text(args)
    if name in ("lang", "transl"):
        text = args[-1] if len(args) > 1 else ""     # {{lang|code|text}}: the code is not prose
    else:
        text = args[0]                               # {{lang-fr|text}}, {{nowrap|text}}, ...
    return "" if _NON_LATIN_LETTER.search(text) else text


def _convert_text(args: list[str]) -> str:
    """The quantity as written in the source unit: "12 km", "5 to 7 km"; the converted figure is
    computed by MediaWiki and would only add numbers."""
    words = [args[0]]
    for arg in args[1:]:
        words.append(arg)
        if arg.lower() not in _CONVERT_JOINERS and not arg.replace(".", "", 1).replace(",", "").isdigit():
            break                                    # the unit ends the quantity
    return " ".join(words)


def drop_back_matter(text: str) -> str:
    """Drop "References", "External links", "See also"... sections, up to the next heading of the
    same or a higher level."""
    kept: list[str] = []
    skip_level = 0  # > 0 while inside a back-matter section of that heading level
    for line in text.split("\n"):
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            if skip_level and level > skip_level:
                continue
            skip_level = level if heading.group(2).strip().lower() in _BACK_MATTER else 0
        if not skip_level:
            kept.append(line)
    return "\n".join(kept)


def remove_nested(text: str) -> str:
    """Drop every top-level template `{{...}}` and table `{|...|}`, with whatever they contain.

    A closer that matches no open bracket is left as text (a stray `}}`, or a template parameter
    line `|}}` that closes a template rather than a table); an unclosed opener swallows the rest
    of the page, since what follows it is markup as MediaWiki would parse it.
    """
    kept: list[str] = []
    stack: list[str] = []  # "{{" or "{|"
    start = 0  # where the current top-level bracket opened (or where kept text resumes)
    pos = 0
    while (match := _BRACKET.search(text, pos)) is not None:
        token, begin = match.group(), match.start()
        if token in ("{|", "|}"):  # a table bracket only at the start of a line (after indentation)
            begin = text.rfind("\n", 0, match.start()) + 1
            if text[begin : match.start()].strip(" \t:" if token == "{|" else " \t"):
                pos = match.start() + 1
                continue
        pos = match.end()
        if token in ("{{", "{|"):
            if not stack:
                kept.append(text[start:begin])
            stack.append(token)
            continue
        opener = "{{" if token == "}}" else "{|"
        if opener not in stack:
            if token == "|}":  # `|}}` closing a template: rescan from after the `|`
                pos = match.end() - 1
            continue
        while stack.pop() != opener:  # an unclosed inner bracket closes with its outer one
            pass
        if not stack:
            start = pos
    if not stack:
        kept.append(text[start:])
    return "".join(kept)


def resolve_links(text: str) -> str:
    """`[[target|label]]` -> label, `[[target]]` -> target; file, category and interlanguage
    links vanish. Innermost links first, so a file caption's own links resolve before the file
    link (and so the caption) is dropped."""
    while True:
        replaced = _INNER_LINK.sub(_link_text, text)
        if replaced == text:
            return replaced
        text = replaced


def _link_text(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, pipe, label = inner.partition("|")
    target = target.strip()
    if target.startswith(":"):  # [[:Category:X]] is a visible link to the category page
        target = target[1:]
    elif ":" in target:
        prefix, _, rest = target.partition(":")
        prefix = prefix.strip().lower()
        if prefix in _DROPPED_LINK_PREFIXES:
            return ""
        if _INTERLANGUAGE.match(prefix) and not pipe:
            return ""
        if prefix in _INTERWIKI and not pipe:
            target = rest
    if pipe:
        # The pipe trick `[[Paris (France)|]]` shows the target without its qualifier.
        return label if label.strip() else re.sub(r"\s*\([^)]*\)$", "", target)
    return target
