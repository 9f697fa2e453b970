import numpy as np

from trainer.tokenizer import Tokenizer, train_tokenizer

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
