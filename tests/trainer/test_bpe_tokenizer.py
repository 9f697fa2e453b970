import numpy as np

import pytest

from trainer.tokenizer import Tokenizer, clean, load_openai_bpe, train_tokenizer

CAPTIONS = ["a red circle on a white background", "three blue squares", "A   GREEN triangle &amp; a cat"] * 20


def test_sos_eos_and_zero_padding(tmp_path):
    tok = train_tokenizer(CAPTIONS, vocab_size=400)
    ids = tok.encode_batch(["a red circle", ""])
    assert ids.dtype == np.int64 and ids.shape == (2, 77)
    assert ids[0, 0] == tok.sos_id and ids[1, 0] == tok.sos_id
    n = int(np.argmax(ids[0] == tok.eot_id))
    assert n > 1 and (ids[0, n + 1:] == 0).all()
    assert list(ids[1, :2]) == [tok.sos_id, tok.eot_id] and (ids[1, 2:] == 0).all()
    assert tok.decode(ids[0]) == "a red circle"


def test_eot_is_the_largest_id_and_text_is_cleaned():
    tok = train_tokenizer(CAPTIONS, vocab_size=400)
    assert tok.eot_id == tok.vocab_size - 1 and tok.sos_id == tok.vocab_size - 2
    assert 258 <= tok.vocab_size <= 400               # a small corpus learns fewer merges than asked
    same = tok.encode_batch(["A   GREEN triangle &amp; a cat", "a green triangle & a cat"])
    assert (same[0] == same[1]).all()


def test_truncation_keeps_the_eot():
    tok = train_tokenizer(CAPTIONS, vocab_size=400)
    ids = tok.encode_batch(["red " * 200], context_length=77)[0]
    assert ids[0] == tok.sos_id and ids[-1] == tok.eot_id and (ids[1:-1] != 0).all()
    assert ids.argmax() == 76


def test_save_load_round_trip(tmp_path):
    tok = train_tokenizer(CAPTIONS, vocab_size=400)
    loaded = Tokenizer.load(tok.save(tmp_path / "tok" / "tokenizer.json"))
    assert loaded.vocab_size == tok.vocab_size and loaded.eot_id == tok.eot_id
    np.testing.assert_array_equal(loaded.encode_batch(CAPTIONS[:3]), tok.encode_batch(CAPTIONS[:3]))


# An OpenAI-format merges file (bpe_simple_vocab_16e6.txt layout), written by hand: a header line,
# then merges in priority order over byte-level symbols, "</w>" closing a word.
MERGES = """#version: 0.2
t h
th e</w>
i n
in g</w>
a n
an d</w>
p h
ph o
pho t
phot o</w>
o f</w>
c a
ca t</w>
d o
do g</w>
r a
i n</w>
ra in</w>
"""


def _openai_reference(text: str, merges: list[tuple[str, str]]) -> list[int]:
    """OpenAI CLIP's tokenizer algorithm, restated: ASCII captions only (stdlib `re` has no \\p{L})."""
    import re

    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    rest = [b for b in range(256) if b not in printable]
    byte_encoder = dict(zip(printable + rest, [chr(c) for c in printable] + [chr(256 + n) for n in range(len(rest))]))
    symbols = list(byte_encoder.values())
    encoder = {t: i for i, t in enumerate(symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges])}
    ranks = {m: i for i, m in enumerate(merges)}
    ids = [len(encoder)]                                               # <start_of_text>
    for token in re.findall(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+", text):
        word = [byte_encoder[b] for b in token.encode()]
        word[-1] += "</w>"
        while len(word) > 1:
            rank, best = min((ranks.get(pair, float("inf")), pair) for pair in zip(word, word[1:]))
            if rank == float("inf"):
                break
            merged, i = [], 0
            while i < len(word):                                       # every occurrence, left to right
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids += [encoder[w] for w in word]
    return ids + [len(encoder) + 1]                                    # <end_of_text>


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_openai_merges_file_gives_openai_ids(tmp_path, suffix):
    import gzip

    path = tmp_path / f"bpe_simple_vocab_16e6{suffix}"
    (gzip.open if suffix.endswith(".gz") else open)(path, "wt").write(MERGES)
    merges = [tuple(line.split()) for line in MERGES.splitlines()[1:]]
    tok = load_openai_bpe(path)
    assert tok.vocab_size == 256 + 256 + len(merges) + 2 and tok.eot_id == tok.vocab_size - 1
    captions = ["A photo of the cat and a dog", "  running   in the RAIN!!", "Two 3D cats, 42 dogs.",
                "the dog's photo &amp; the thing"]
    ids = tok.encode_batch(captions)
    for row, caption in zip(ids, captions):
        expected = _openai_reference(clean(caption), merges)
        assert list(row[:len(expected)]) == expected and not row[len(expected):].any(), caption
    assert ids[0, 2] == 256 + 256 + merges.index(("phot", "o</w>"))    # "photo</w>" is one token
    assert tok.decode(ids[0]) == "a photo of the cat and a dog"
    loaded = Tokenizer.load(tok.save(tmp_path / "tokenizer.json"))
    np.testing.assert_array_equal(loaded.encode_batch(captions), ids)
