"""`wit tokenizer train --openai-merges FILE`: OpenAI's tokenizer from a bpe_simple_vocab_16e6-format file,
written as a tokenizer.json that `wit train --tokenizer` takes."""

import argparse
import gzip

import numpy as np
import pytest

from test_bpe_tokenizer import MERGES, _openai_reference
from trainer.cli import register
from trainer.tokenizer import Tokenizer, clean


def _wit(*argv):
    parser = argparse.ArgumentParser(prog="wit")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    return args.run(args)


def test_openai_merges_flag_writes_openais_tokenizer(tmp_path, capsys):
    merges_file = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(merges_file, "wt", encoding="utf-8") as f:                    # '#version' header, then merges
        f.write(MERGES)
    assert _wit("tokenizer", "train", "--openai-merges", str(merges_file), "--out", str(tmp_path / "tok.json")) == 0
    merges = [tuple(line.split()) for line in MERGES.splitlines()[1:]]
    tok = Tokenizer.load(tmp_path / "tok.json")
    assert tok.vocab_size == 256 + 256 + len(merges) + 2 and tok.eot_id == tok.vocab_size - 1
    captions = ["A photo of the cat and a dog", "dogs running in the rain"]
    ids = tok.encode_batch(captions)
    for row, caption in zip(ids, captions):
        expected = _openai_reference(clean(caption), merges)
        np.testing.assert_array_equal(row[:len(expected)], expected)
    assert f"{tok.vocab_size} ids" in capsys.readouterr().out


def test_captions_or_merges_one_is_required(tmp_path):
    with pytest.raises(SystemExit):
        _wit("tokenizer", "train", "--out", str(tmp_path / "tok.json"))
    with pytest.raises(SystemExit):
        _wit("tokenizer", "train", "--captions", "c.txt", "--openai-merges", "m.txt", "--out", "t.json")
