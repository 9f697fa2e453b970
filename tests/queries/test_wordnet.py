"""WordNet noun lemmas from the vendored (reduced) index.noun."""

from __future__ import annotations

from pathlib import Path

import pytest

from queries.wordnet import noun_lemmas
from core.errors import WitError


def test_vendored_lemmas_are_normalized_and_hold_visual_words(demo) -> None:
    lemmas = noun_lemmas(demo.wordnet_dir)
    assert lemmas == sorted(set(lemmas))
    assert len(lemmas) > 11_000  # 11,846 SemCor-tagged nouns, see queries/data/wordnet/README.md
    for word in ("red", "blue", "green", "yellow", "circle", "square", "triangle", "star", "dog", "cat",
                 "car", "tree", "ice cream", "post office", "united states"):
        assert word in lemmas
    assert not any("_" in lemma or lemma != lemma.lower() for lemma in lemmas)
    assert Path(demo.wordnet_dir, "index.noun").stat().st_size < 1_000_000


def test_licence_header_lines_are_not_lemmas(demo) -> None:
    assert "this software and database is being provided" not in noun_lemmas(demo.wordnet_dir)


def test_empty_or_missing_wordnet_dir(tmp_path: Path) -> None:
    with pytest.raises(WitError, match="no index.noun in the WordNet directory"):
        noun_lemmas(tmp_path)
    with pytest.raises(WitError, match="WordNet directory not found"):
        noun_lemmas(tmp_path / "absent")
    (tmp_path / "index.noun").write_text("  1 licence header only\n")
    with pytest.raises(WitError, match="holds no noun lemmas"):
        noun_lemmas(tmp_path)
    (tmp_path / "index.noun").write_text("dog v 1 0 1 0 01234567\n")
    with pytest.raises(WitError, match="line 1: not a WordNet index.noun line"):
        noun_lemmas(tmp_path)
