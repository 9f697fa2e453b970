"""The queries as a trie of words, walked over a whole batch of texts at once with numpy.

A query matches a text when its words occur, in order and adjacent, among the text's words after
queries.normalize — the same thing as `" " + query + " "` occurring in `" " + normalize(text) + " "`,
so `cat` never matches `category`, and overlapping queries ("new york", "york city", "new york
city") are all found. Matching on words instead of characters lets the hot loop run in numpy:
every word of the batch becomes a vocabulary id (one dict lookup per word), and the trie is walked
one depth at a time for all start positions together (depth 1: an array index; deeper: an
open-addressing hash table of (state, word) -> state). A character automaton (pyahocorasick) gives
every match back as a Python object; here only the words are Python objects.

Normalization of a batch: texts that are all ASCII (most alt texts) take a byte-level path
(`str.lower`, NFKC and the word regex reduce to a byte table and one numpy pass), the rest
queries.normalize's own `tokens_of_texts`. tests/pipeline/test_word_trie.py holds both equal to
queries.normalize.tokens on arbitrary text.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from queries.normalize import tokens_of_texts

LINE_END = -2  # vocabulary id of the marker that ends every text of a batch
UNKNOWN = -1  # a word of no query: nothing can match across it
_ASCII_MARK = "\x01"  # ends each text on the ASCII path; "\n" on the other (tokens_of_texts)

# ASCII byte -> lowercased byte; anything that is neither a word character nor ' - or the mark
# becomes a space. (For ASCII, the word regex's [^\W_] is [A-Za-z0-9], and NFKC changes nothing.)
_WORD_BYTES = b"0123456789abcdefghijklmnopqrstuvwxyz"
_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if (c in _WORD_BYTES or c in b"'-\x01") else 32 for c in range(256)
)
_IS_WORD_BYTE = np.frombuffer(bytes(c in _WORD_BYTES for c in range(256)), np.bool_)


@dataclass(frozen=True, eq=False)
class QueryTrie:
    vocab: dict[str, int]  # word -> id 0..V-1; both line-end marks -> LINE_END
    first: np.ndarray  # [V] state after the word from the root, -1: no query starts with it
    table_key: np.ndarray  # [2^k] open addressing: state * V + word, -1 empty
    table_child: np.ndarray  # [2^k] the state that edge leads to
    ends_query: np.ndarray  # [S] bool: a query ends at the state
    query_of: np.ndarray  # [S] the id of that query
    has_child: np.ndarray  # [S] bool

    @property
    def num_words(self) -> int:
        return len(self.first)

    def __len__(self) -> int:
        return int(self.ends_query.sum())


def build_trie(query_ids: list[int], queries: list[str | None]) -> QueryTrie:
    """A query is its words split on " "; one given twice keeps its last id. Blank queries, and any
    holding a line-end mark, are left out: neither can occur in one normalized text."""
    vocab: dict[str, int] = {}
    edges: dict[tuple[int, int], int] = {}  # (parent state, word id) -> state; the root is 0
    terminal: dict[int, int] = {}
    for query_id, query in zip(query_ids, queries):
        if not query or not query.strip() or "\n" in query or _ASCII_MARK in query:
            continue
        state = 0
        for word in query.split(" "):
            edge = (state, vocab.setdefault(word, len(vocab)))
            state = edges.setdefault(edge, len(edges) + 1)
        terminal[state] = int(query_id)
    num_words, num_states = len(vocab), len(edges) + 1
    parent = np.fromiter((e[0] for e in edges), np.int64, len(edges))
    word = np.fromiter((e[1] for e in edges), np.int64, len(edges))
    child = np.fromiter(edges.values(), np.int64, len(edges))
    first = np.full(num_words, -1, np.int64)
    from_root = parent == 0
    first[word[from_root]] = child[from_root]
    deeper = ~from_root
    table_key, table_child = _hash_table(parent[deeper] * num_words + word[deeper], child[deeper])
    ends_query, query_of = np.zeros(num_states, bool), np.zeros(num_states, np.int64)
    ends_query[list(terminal)] = True
    query_of[list(terminal)] = list(terminal.values())
    has_child = np.zeros(num_states, bool)
    has_child[parent] = True
    vocab["\n"] = vocab[_ASCII_MARK] = LINE_END  # no query word holds either (left out above)
    return QueryTrie(vocab, first, table_key, table_child, ends_query, query_of, has_child)


def _slot(keys: np.ndarray, mask: int) -> np.ndarray:
    # Fibonacci hashing: the high bits of key * 2^64/phi spread consecutive keys apart
    return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)).astype(np.int64) & mask


def _hash_table(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear probing at load <= 1/4, filled in rounds: each round every free slot takes its first
    claimant, and the others move one slot on."""
    size = 1 << max(4, int(len(keys) * 4 - 1).bit_length())
    table_key, table_value = np.full(size, -1, np.int64), np.full(size, -1, np.int64)
    slots, pending = _slot(keys, size - 1), np.arange(len(keys))
    while len(pending):
        at = slots[pending]
        free = table_key[at] == -1
        _, first_claim = np.unique(at[free], return_index=True)
        placed = pending[free][first_claim]
        table_key[slots[placed]], table_value[slots[placed]] = keys[placed], values[placed]
        waiting = np.ones(len(pending), bool)
        waiting[np.flatnonzero(free)[first_claim]] = False
        pending = pending[waiting]
        slots[pending] = (slots[pending] + 1) & (size - 1)
    return table_key, table_value


def _lookup(trie: QueryTrie, keys: np.ndarray) -> np.ndarray:
    """The child state of each (state * V + word) key, -1 where there is no such edge."""
    mask = len(trie.table_key) - 1
    found = np.full(len(keys), -1, np.int64)
    todo, slots = np.arange(len(keys)), _slot(keys, mask)
    while len(todo):
        stored = trie.table_key[slots]
        hit = stored == keys[todo]
        found[todo[hit]] = trie.table_child[slots[hit]]
        going = ~hit & (stored != -1)
        todo, slots = todo[going], (slots[going] + 1) & mask
    return found


def ascii_tokens(texts: list[str]) -> list[str]:
    """`queries.normalize.tokens` of ASCII texts, each followed by the mark "\\x01", in a few C passes."""
    if not texts:
        return []
    joined = (f" {_ASCII_MARK} ".join(texts) + f" {_ASCII_MARK}").encode("ascii")
    if joined.count(_ASCII_MARK.encode()) != len(texts):  # a text holds the mark itself: a separator
        joined = (
            f" {_ASCII_MARK} ".join(t.replace(_ASCII_MARK, " ") for t in texts) + f" {_ASCII_MARK}"
        ).encode()
    joined = joined.translate(_TABLE)
    if b"'" in joined or b"-" in joined:
        # ' and - join two words only between word characters ("x-ray", "dog's"), else they separate
        chars = np.frombuffer(joined, np.uint8).copy()
        word = _IS_WORD_BYTE[chars]
        joins = np.zeros(len(chars), bool)
        joins[1:-1] = word[:-2] & word[2:]
        chars[((chars == ord("'")) | (chars == ord("-"))) & ~joins] = ord(" ")
        joined = chars.tobytes()
    return joined.decode("ascii").split()


def word_ids(trie: QueryTrie, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Vocabulary ids of the batch's words, LINE_END after each text, and the text of each line
    (None: line i is text i). ASCII texts come first, the others after them."""
    get = trie.vocab.get
    if all(t.isascii() for t in texts):
        words = ascii_tokens(texts)
        return np.fromiter(map(get, words, repeat(UNKNOWN)), np.int64, len(words)), None
    in_ascii = np.fromiter((t.isascii() for t in texts), bool, len(texts))
    order = np.concatenate([np.flatnonzero(in_ascii), np.flatnonzero(~in_ascii)])
    words = ascii_tokens([t for t in texts if t.isascii()])
    words += tokens_of_texts([t for t in texts if not t.isascii()])
    return np.fromiter(map(get, words, repeat(UNKNOWN)), np.int64, len(words)), order


def find_in_batch(trie: QueryTrie, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has_words [N], rows [M], query_ids [M]): the (text, query) pairs found, sorted by row then
    query id, unique; has_words[i]: text i has a word (normalize(text) != "")."""
    if not texts:
        return np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids, line_text = word_ids(trie, texts)
    line_ends = np.flatnonzero(ids == LINE_END)  # [N]
    has_words = np.diff(line_ends, prepend=-1) > 1
    start = np.flatnonzero(ids >= 0)
    state = trie.first[ids[start]]
    start, state = start[state >= 0], state[state >= 0]
    starts, queries = [], []
    depth = 1
    while len(start):
        ends = trie.ends_query[state]
        starts.append(start[ends])
        queries.append(trie.query_of[state[ends]])
        going = trie.has_child[state]
        start, state = start[going], state[going]
        word = ids[start + depth]  # never past the end: the last id is a LINE_END
        known = word >= 0
        start, state = start[known], state[known]
        state = _lookup(trie, state * trie.num_words + word[known])
        start, state = start[state >= 0], state[state >= 0]
        depth += 1
    found_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    found_query = np.concatenate(queries) if queries else np.zeros(0, np.int64)
    rows = np.searchsorted(line_ends, found_start)
    if line_text is not None:  # line i holds text line_text[i]
        rows = line_text[rows]
        has_words_of_lines, has_words = has_words, np.empty_like(has_words)
        has_words[line_text] = has_words_of_lines
    if len(found_query) and (found_query.min() < -(1 << 31) or found_query.max() >= 1 << 31):
        raise ValueError("query ids must fit in int32 (queries.parquet's query_id)")
    pairs = np.sort((rows << 32) | (found_query + (1 << 31)))  # one int64 per pair: by row, then by id
    unique = np.ones(len(pairs), bool)
    unique[1:] = pairs[1:] != pairs[:-1]
    pairs = pairs[unique]
    return has_words, pairs >> 32, (pairs & 0xFFFFFFFF) - (1 << 31)
