"""Lowercased byte-level BPE, as in CLIP: every caption becomes SOS + <= 75 tokens + EOS, zero padded to 77.

Text is cleaned the way OpenAI's tokenizer cleans it (ftfy, HTML unescape, whitespace collapsed,
lowercased) in Python before a batched `tokenizers` encode. The two special tokens are added after
BPE training, so they take the last two ids: `<end_of_text>` has the largest id, which is what lets
the text encoder pool the EOT position with `argmax` (trainer/model.py), and id 0 is an ordinary
byte token, used as padding like OpenAI's.
"""

from __future__ import annotations

import gzip
import html
import itertools
import os
import re
from pathlib import Path
from typing import Iterable

import ftfy
import numpy as np
import tokenizers
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers

from core.errors import WitError

SOS, EOS = "<start_of_text>", "<end_of_text>"
CONTEXT_LENGTH = 77
_WHITESPACE = re.compile(r"\s+")
# OpenAI's pre-tokenizer: contractions, runs of letters, single digits, runs of other symbols.
_OPENAI_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
OPENAI_VOCAB_SIZE = 49_152 + 256        # 256 bytes, 256 bytes + "</w>", 48,894 merges, SOS, EOS


def clean(text: str) -> str:
    if not text.isascii() or "&" in text:          # ftfy and HTML entities can't change plain ASCII
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
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
        # What `bpe.encode` gives (and what a saved file holds): SOS $A EOS.
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{SOS} $A {EOS}", special_tokens=[(SOS, self.sos_id), (EOS, self.eot_id)])
        # encode_batch uses a copy that does BPE only: SOS/EOS, truncation and padding are faster
        # in numpy than as 77-long Rust Encodings turned into Python lists (~2x on captions).
        self._encoder = tokenizers.Tokenizer.from_str(bpe.to_str())
        self._encoder.post_processor = None
        self._encoder.no_truncation()
        self._encoder.no_padding()

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size(with_added_tokens=True)

    def encode_batch(self, texts: Iterable[str], context_length: int = CONTEXT_LENGTH) -> np.ndarray:
        """int64 [N, context_length]: SOS, the caption's first context_length - 2 tokens, EOS, zeros."""
        if context_length < 2:
            raise ValueError(f"context_length {context_length} leaves no room for SOS and EOS")
        # encode_batch_fast: the same ids as encode_batch, without computing character offsets
        ids = [e.ids for e in self._encoder.encode_batch_fast([clean(str(t)) for t in texts])]
        return _sos_tokens_eos(ids, context_length, self.sos_id, self.eot_id)

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


def _sos_tokens_eos(ids: list[list[int]], context_length: int, sos: int, eos: int) -> np.ndarray:
    """Ragged token ids -> int64 [N, context_length] rows `SOS ids[:context_length - 2] EOS 0...`,
    with one flat copy of the ids instead of a Python loop per row."""
    lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))                  # [N]
    flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(ids)), lengths)                                 # [T] row of each id
    cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # [T] its position
    kept = cols < context_length - 2
    out = np.zeros((len(ids), context_length), np.int64)
    out[:, 0] = sos
    out[rows[kept], cols[kept] + 1] = flat[kept]
    out[np.arange(len(ids)), np.minimum(lengths, context_length - 2) + 1] = eos
    return out


def load_openai_bpe(merges_path: str | os.PathLike) -> Tokenizer:
    """A tokenizer equal to OpenAI CLIP's from a `bpe_simple_vocab_16e6.txt[.gz]`-format file: a
    header line, then one merge ("a b") per line, in priority order, over byte-level characters,
    with "</w>" marking the end of a word. Ids as OpenAI's: the 256 byte characters, the same with
    "</w>", the first 48,894 merges, then SOS and EOS (49,406 and 49,407 with the full file)."""
    path = Path(merges_path)
    if not path.is_file():
        raise WitError(f"no merges file at {path}", hint="an OpenAI-format bpe_simple_vocab_16e6.txt(.gz)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]                               # line 0 is a version header
    merges = [tuple(line.split()) for line in lines[:OPENAI_VOCAB_SIZE - 256 - 256 - 2] if line.strip()]
    if any(len(m) != 2 for m in merges):
        raise WitError(f"{path} is not a merges file", hint="each line after the header must be 'a b'")
    chars = list(pre_tokenizers.ByteLevel.alphabet())
    chars.sort(key=_BYTE_ORDER.__getitem__)                              # OpenAI's bytes_to_unicode order
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    bpe = tokenizers.Tokenizer(models.BPE(vocab, merges, end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_OPENAI_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.Sequence([decoders.Replace("</w>", "\u0120"), decoders.ByteLevel()])
    bpe.add_special_tokens([SOS, EOS])
    return Tokenizer(bpe)


def _bytes_to_unicode_order() -> dict[str, int]:
    """OpenAI's bytes_to_unicode() lists printable bytes first (as themselves), then the others
    (shifted to 256+); return each character's index in that list."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return {chr(c): i for i, c in enumerate(printable + [256 + n for n in range(len(rest))])}


_BYTE_ORDER = _bytes_to_unicode_order()


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
