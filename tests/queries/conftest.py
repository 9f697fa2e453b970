"""Shared fixtures: the vendored demo inputs (queries/data), and small bad inputs written per test."""

from __future__ import annotations

import bz2
from pathlib import Path

import pytest

from queries.config import QueriesConfig, demo_config


@pytest.fixture(scope="session")
def demo() -> QueriesConfig:
    return demo_config()


@pytest.fixture(scope="session")
def excerpt(demo) -> str:
    """The 206-page enwiki excerpt (articles, redirects, disambiguation pages, one ns-4 page)."""
    return demo.dumps[0]


@pytest.fixture(scope="session")
def table_markup(demo) -> str:
    """5 articles with heavy `{| ... |}` tables and no <siteinfo>."""
    return demo.dumps[1]


class XmlDump:
    """Small dumps written by a test (for the cases the real excerpts do not have)."""

    @staticmethod
    def page(title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
        redirect_el = f'<redirect title="{redirect}" />' if redirect else ""
        return (f"<page><title>{title}</title><ns>{ns}</ns>{redirect_el}<revision>"
                f'<text xml:space="preserve">{text}</text></revision></page>')

    @staticmethod
    def mediawiki(*pages: str) -> str:
        """A minimal export-0.11 document (a newer schema than the excerpt's 0.10)."""
        return ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">'
                + "".join(pages) + "</mediawiki>")

    @staticmethod
    def write_bz2(path: Path, xml: str) -> Path:
        path.write_bytes(bz2.compress(xml.encode()))
        return path


@pytest.fixture(scope="session")
def xml_dump() -> type[XmlDump]:
    return XmlDump
