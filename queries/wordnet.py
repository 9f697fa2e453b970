"""WordNet noun lemmas, the `wordnet` query source (CLIP adds all WordNet synsets not already in
the list; a synset is named by its lemmas, so every noun lemma becomes a query)."""

from __future__ import annotations

from pathlib import Path

from queries.normalize import normalize
from core import storage
from core.errors import WitError

INDEX_FILE = "index.noun"


def index_path(wordnet_dir: str | Path) -> Path | str:
    """The `index.noun` of a WordNet dict/ directory (local, or a cloud URI prefix); WitError when there
    is none."""
    remote = storage.is_uri(wordnet_dir)
    path = storage.join(wordnet_dir, INDEX_FILE) if remote else Path(wordnet_dir) / INDEX_FILE
    if not storage.is_dir(wordnet_dir):
        raise WitError(f"WordNet directory not found: {wordnet_dir}",
                       hint="pass a WordNet dict/ directory, e.g. /usr/share/wordnet (Debian wordnet-base)")
    if not storage.is_file(path):
        raise WitError(f"no {INDEX_FILE} in the WordNet directory {wordnet_dir}",
                       hint="pass a WordNet 3.0 dict/ directory in Princeton wndb format")
    return path


def noun_lemmas(wordnet_dir: str | Path) -> list[str]:
    """Normalized noun lemmas, sorted and unique: "ice_cream" -> "ice cream", "'hood" -> "hood".

    Princeton `index.noun`: licence header lines start with two spaces; every other line starts
    with the lemma (lowercase, words joined by underscores), then the part of speech `n`.
    """
    path = index_path(wordnet_dir)
    lemmas: set[str] = set()
    with storage.open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            if line.startswith("  ") or not line.strip():
                continue
            fields = line.split(" ", 2)
            if len(fields) < 3 or fields[1] != "n":
                raise WitError(f"{path}, line {number}: not a WordNet index.noun line: {line[:60]!r}",
                               hint="expected `lemma n synset_cnt p_cnt ...` (Princeton wndb format)")
            if lemma := normalize(fields[0].replace("_", " ")):
                lemmas.add(lemma)
    if not lemmas:
        raise WitError(f"{path} holds no noun lemmas", hint="the file is empty or only a licence header")
    return sorted(lemmas)
