"""The web's machine-readable opt-outs besides X-Robots-Tag: robots.txt and the W3C TDMRep reservation.

robots.txt (RFC 9309): the group for our user-agent token if there is one, else the `*` group.
A robots.txt that cannot be had (network error, timeout, 4xx, 5xx) allows everything, as crawlers
do in practice and as the issue asks; RFC 9309 would have a 5xx disallow everything, which would
make one broken server's error page stop a whole host. TDMRep (W3C community report, 2024): a
`tdm-reservation: 1` response header, or the first rule of /.well-known/tdmrep.json whose
`location` pattern matches the path, reserves text and data mining; we then do not keep the image.

Everything here is a pure function of text, headers and paths; fetching and caching (once per
origin per shard task) are pipeline.fetch's.
"""

from __future__ import annotations

import json
import re
import urllib.robotparser
from dataclasses import dataclass
from typing import Mapping

ROBOTS_PATH = "/robots.txt"
TDMREP_PATH = "/.well-known/tdmrep.json"
MAX_POLICY_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB of robots.txt


@dataclass(frozen=True)
class TdmRule:
    location: str  # a path pattern: robots.txt syntax, `*` any characters, a final `$` the end
    reserved: bool


def parse_robots(text: str) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(text.splitlines())
    return parser


def robots_allows(parser: urllib.robotparser.RobotFileParser | None, token: str, url: str) -> bool:
    """None (no usable robots.txt) allows everything."""
    return parser is None or parser.can_fetch(token, url)


def parse_tdmrep(text: str) -> tuple[TdmRule, ...]:
    """tdmrep.json -> rules in file order; malformed files or entries mean no rule (nothing reserved)."""
    try:
        entries = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(entries, list):
        return ()
    rules = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("location"), str):
            rules.append(TdmRule(entry["location"], str(entry.get("tdm-reservation", 0)).strip() == "1"))
    return tuple(rules)


def _pattern(location: str) -> re.Pattern:
    anchored = location.endswith("$")
    body = re.escape(location.removesuffix("$")).replace(r"\*", ".*")
    return re.compile(body + ("$" if anchored else ""))


def tdmrep_reserves(rules: tuple[TdmRule, ...], path: str) -> bool:
    """The first rule whose location matches the start of `path` decides; no match: not reserved."""
    for rule in rules:
        if _pattern(rule.location).match(path):
            return rule.reserved
    return False


def header_reserves(headers: Mapping[str, str]) -> bool:
    """A `tdm-reservation: 1` response header (names are case-insensitive in HTTP messages)."""
    value = headers.get("tdm-reservation")
    return value is not None and value.strip() == "1"
