"""Lowercased byte-level BPE, as in CLIP: every caption becomes SOS + <= 75 tokens + EOS, zero padded to 77.

Text is cleaned the way OpenAI's tokenizer cleans it (ftfy, HTML unescape, whitespace collapsed,
lowercased) in Python before a batched `tokenizers` encode. The two special tokens are added after
BPE training, so they take the last two ids: `<end_of_text>` has the largest id, which is what lets
the text encoder pool the EOT position with `argmax` (trainer/model.py), and id 0 is an ordinary
byte token, used as padding like OpenAI's.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Iterable

import ftfy
import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from wit.errors import WitError

SOS, EOS = "<start_of_text>", "<end_of_text>"
CONTEXT_LENGTH = 77
_WHITESPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return _WHITESPACE.sub(" ", text).strip().lower()


class Tokenizer:
    def __init__(self, bpe: tokenizers.Tokenizer):
        self.bpe = bpe
        self.sos_id = bpe.token_to_id(SOS)
        self.eot_id = bpe.token_to_id(EOS)
        if self.sos_id is None or self.eot_id is None:
            raise WitError("tokenizer file lacks <start_of_text>/<end_of_text>",
                           hint="train one with `wit tokenizer train`")
        if self.eot_id != self.vocab_size - 1:
            raise WitError("tokenizer's <end_of_text> is not its largest id; EOT pooling needs it last")

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: Iterable[str], context_length: int = CONTEXT_LENGTH) -> np.ndarray:
        """int64 [N, context_length]: SOS, the caption's tokens (truncated), EOS, then zeros."""
        encodings = self.bpe.encode_batch([clean(str(t)) for t in texts], add_special_tokens=False)
        out = np.zeros((len(encodings), context_length), dtype=np.int64)
        keep = context_length - 2
        for row, enc in zip(out, encodings):
            ids = enc.ids[:keep]
            row[0] = self.sos_id
            row[1:1 + len(ids)] = ids
            row[1 + len(ids)] = self.eot_id                 # truncation never drops the EOT
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of one row of `encode_batch` (everything between SOS and the first EOT)."""
        ids = [int(i) for i in ids]
        ids = ids[:ids.index(self.eot_id)] if self.eot_id in ids else ids
        return self.bpe.decode([i for i in ids if i != self.sos_id]).strip()

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.bpe.save(str(tmp))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        if not Path(path).is_file():
            raise WitError(f"no tokenizer file at {path}", hint="train one with `wit tokenizer train`")
        return cls(tokenizers.Tokenizer.from_file(str(path)))


def train_tokenizer(texts: Iterable[str], vocab_size: int = 49_152, min_frequency: int = 2) -> Tokenizer:
    """Learn a byte-level BPE of at most `vocab_size` ids (the 256 bytes, merges, SOS, EOS) on `texts`.

    A small corpus yields fewer merges than asked for; that is expected.
    """
    if vocab_size < 258:
        raise WitError(f"vocab_size {vocab_size} is too small", hint="byte-level BPE needs >= 258 ids")
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 2,                       # room for the two special tokens, added last
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    cleaned = (clean(str(t)) for t in texts)
    bpe.train_from_iterator(cleaned, trainer=trainer)
    if bpe.get_vocab_size() == 0:
        raise WitError("no text to train the tokenizer on", hint="the captions are empty")
    bpe.add_special_tokens([SOS, EOS])
    return Tokenizer(bpe)
