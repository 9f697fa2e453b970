"""encode_batch adds SOS/EOS, truncates and pads in numpy; it must give exactly what `tokenizers`
gives doing the same in Rust (TemplateProcessing + truncation + padding), the path it replaced."""

import gzip

import numpy as np
import pytest
import tokenizers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.trainer.test_bpe_tokenizer import CAPTIONS, MERGES
from trainer.tokenizer import EOS, SOS, clean, load_openai_bpe, train_tokenizer


def rust_encode(tok, texts: list[str], context_length: int) -> np.ndarray:
    """The former encode_batch: the whole row built by `tokenizers`."""
    ref = tokenizers.Tokenizer.from_str(tok.bpe.to_str())           # holds the SOS $A EOS template
    ref.enable_truncation(context_length)                          # counts SOS/EOS
    ref.enable_padding(length=context_length, pad_id=0)
    encodings = ref.encode_batch([clean(str(t)) for t in texts])
    return np.array([e.ids for e in encodings], dtype=np.int64).reshape(-1, context_length)


@pytest.fixture(scope="module")
def tokenizers_under_test(tmp_path_factory):
    merges = tmp_path_factory.mktemp("openai") / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(merges, "wt") as f:
        f.write(MERGES)
    corpus = CAPTIONS + ["Crème brûlée à Zürich — 東京 🐈 naïve façade", "x-ray 3D 42 dogs' toys"] * 10
    return {"trained": train_tokenizer(corpus, vocab_size=500), "openai": load_openai_bpe(merges)}


# Words, digits, punctuation, entities, the special tokens' own text, odd whitespace and any unicode.
PIECES = st.sampled_from(["a", "red", "photo", "the cat", "dog's", "42", "3D", "!!", "&amp;", "&lt;b&gt;",
                          SOS, EOS, EOS.upper(), " ", "  ", "\t", "\n", "\u00a0", "\u3000", "é", "ﬁ",
                          "Ã©", "東京", "🐈", "\u200b", "\x00"])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=60).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS, max_size=8), context_length=st.sampled_from([2, 3, 5, 16, 77]))
def test_numpy_rows_equal_rust_rows(tokenizers_under_test, texts, context_length):
    for tok in tokenizers_under_test.values():
        ours = tok.encode_batch(texts, context_length=context_length)
        assert ours.shape == (len(texts), context_length) and ours.dtype == np.int64
        np.testing.assert_array_equal(ours, rust_encode(tok, texts, context_length))


def test_long_empty_and_special_token_text(tokenizers_under_test):
    texts = ["red " * 500, "", "   ", f"a {EOS} b {SOS}", "photo of the cat " * 30, "a"]
    for tok in tokenizers_under_test.values():
        for context_length in (2, 3, 77, 200):
            np.testing.assert_array_equal(tok.encode_batch(texts, context_length=context_length),
                                          rust_encode(tok, texts, context_length))
        assert tok.encode_batch([]).shape == (0, 77)


def test_context_length_below_two_is_an_error(tokenizers_under_test):
    with pytest.raises(ValueError, match="context_length"):
        tokenizers_under_test["trained"].encode_batch(["a"], context_length=1)
