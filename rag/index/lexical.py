"""The lexical index: BM25 (bm25s) over chunk texts, saved as .npy + JSON in the index version folder (no pickle).

Words are lower-cased, stop words dropped and reduced to their Snowball (Porter 2) English stem (`terms`), the same
way for chunks, questions and the sentence features in ranking.py, so a question word counts wherever its stem
appears ("located" meets "location"). The stemmer is recorded in the saved index: an index whose words were stemmed
differently is refused with the fix (a rebuild), since its vocabulary would silently miss the question's words.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import Stemmer

from rag.errors import IndexCorruptError, IndexMismatchError

if TYPE_CHECKING:
    import bm25s

__all__ = [
    "LexicalIndex",
    "LexicalBuilder",
    "terms",
    "phrases",
    "content_terms",
    "FOLDER",
    "STOP_WORDS",
    "TOKENIZER",
    "saved_tokenizer",
    "terms_and_phrases",
]

FOLDER = "lexical"
_IDS = "chunk_ids.npy"
_IDF = "idf.npy"
_META = "lexical.json"

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
    ours out over own same she should so some such than that the their theirs them then there these they this those
    through to too under until up very was we were what when where which while who whom why will with would you your
    yours s t don also many much get got make made say said says per""".split()
)


# Written into lexical.json; an index saved with another tokenizer is refused (see LexicalIndex.load).
# Recorded in every index version: the name predates the index/ folder and must not follow the module.
TOKENIZER = "rag.lexical.terms/snowball-english"
_STEMMER = Stemmer.Stemmer("english")


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of `text` that carry meaning, in order (stop words removed)."""
    return [_stem(w) for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOP_WORDS]


def phrases(text: str) -> set[tuple[str, str]]:
    """Pairs of content terms that stand next to each other in `text` (no stop word between them)."""
    return terms_and_phrases(text)[1]


def terms_and_phrases(text: str) -> tuple[list[str], set[tuple[str, str]]]:
    """`terms(text)` and `phrases(text)` from one pass over the words."""
    out: list[str] = []
    pairs: set[tuple[str, str]] = set()
    previous = None
    for m in _WORD.finditer(text):
        w = m.group(0).lower()
        if w in STOP_WORDS:
            previous = None
            continue
        stem = _stem(w)
        out.append(stem)
        if previous is not None:
            pairs.add((previous, stem))
        previous = stem
    return out, pairs


def content_terms(text: str) -> set[str]:
    """The set of `terms(text)`."""
    return set(terms(text))


def saved_tokenizer(version_dir: Path) -> str | None:
    """The tokenizer an index version's lexical index was saved with (None when unreadable)."""
    try:
        return json.loads((Path(version_dir) / FOLDER / _META).read_text(encoding="utf-8")).get("tokenizer")
    except (OSError, ValueError, AttributeError):
        return None


class LexicalIndex:
    """BM25 scores of chunks for a question, plus the inverse document frequency of every indexed term.

    Args:
        bm25: a fitted bm25s.BM25.
        chunk_ids: int64 array (n_chunks,): the store id of each BM25 document, in BM25 order.
        idf: float32 array (vocabulary,): log(1 + (N - df + 0.5) / (df + 0.5)) per term id.

    Example:
        >>> lex = LexicalIndex.build([11, 12], ["the Rhine flows north", "Warsaw is in Poland"])
        >>> lex.search("where does the Rhine flow?", 1)[1]
        array([11])
    """

    def __init__(self, bm25: bm25s.BM25, chunk_ids: np.ndarray, idf: np.ndarray):
        self.bm25 = bm25
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self.idf = np.asarray(idf, dtype=np.float32)
        self.vocab: dict[str, int] = bm25.vocab_dict

    @classmethod
    def build(cls, chunk_ids: Sequence[int], texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
        """Index chunk texts; `chunk_ids[i]` is the id of `texts[i]`."""
        import bm25s

        tokens = [terms(t) or [""] for t in texts]
        bm25 = bm25s.BM25(k1=k1, b=b)
        bm25.index(tokens, show_progress=False)
        df = np.zeros(len(bm25.vocab_dict), dtype=np.float64)
        for toks in tokens:
            for t in set(toks):
                df[bm25.vocab_dict[t]] += 1
        n = max(len(texts), 1)
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        return cls(bm25, np.asarray(chunk_ids, dtype=np.int64), idf)

    @classmethod
    def from_ids(
        cls,
        chunk_ids: Sequence[int] | np.ndarray,
        term_ids: Sequence[np.ndarray] | _TermList | _TermFile,
        vocab: dict[str, int],
        k1: float = 1.2,
        b: float = 0.75,
    ) -> LexicalIndex:
        """Index chunks given as arrays of term ids (see `LexicalBuilder`); same scores as `build` on their texts."""
        import bm25s

        if not isinstance(term_ids, (_TermList, _TermFile)):
            term_ids = _TermList(term_ids)

        bm25 = bm25s.BM25(k1=k1, b=b)
        if (bm25.method, bm25.idf_method) == ("lucene", "lucene"):
            # bm25s' own fit holds five arrays the size of the matrix at once; this one only the matrix itself.
            bm25.scores, df = _lucene_matrix(term_ids, len(vocab), k1, b)
            bm25.vocab_dict = vocab
            bm25.unique_token_ids_set = set(vocab.values())
            bm25.nonoccurrence_array = None
        else:  # pragma: no cover - another bm25s default scoring: its own fit
            bm25.index((list(term_ids), vocab), show_progress=False)
            df = np.zeros(len(vocab), dtype=np.int64)
            for ids in term_ids:
                df[np.unique(ids)] += 1
        n = max(len(term_ids), 1)
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        return cls(bm25, np.asarray(chunk_ids, dtype=np.int64), idf)

    def save(self, version_dir: Path) -> list[str]:
        """Write the index under `version_dir/lexical/`; return the written paths relative to `version_dir`."""
        folder = Path(version_dir) / FOLDER
        self.bm25.save(folder, corpus=None, allow_pickle=False, show_progress=False)
        np.save(folder / _IDS, self.chunk_ids, allow_pickle=False)
        np.save(folder / _IDF, self.idf, allow_pickle=False)
        (folder / _META).write_text(json.dumps({"tokenizer": TOKENIZER, "documents": len(self.chunk_ids)}))
        return sorted(f"{FOLDER}/{p.name}" for p in folder.iterdir() if p.is_file())

    @classmethod
    def load(cls, version_dir: Path) -> LexicalIndex:
        """Open a saved lexical index (memory-mapped arrays, no pickle)."""
        import bm25s

        folder = Path(version_dir) / FOLDER
        if not (folder / _IDS).is_file():
            raise IndexCorruptError(f"{folder} is missing; run `rag rebuild-index --full` to build the lexical index")
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"{folder / _META} cannot be read ({exc}); run `rag rebuild-index --full`"
            ) from None
        if meta.get("tokenizer") != TOKENIZER:
            raise IndexMismatchError(
                f"{folder} was built by an older version that splits words differently ({meta.get('tokenizer')!r}); "
                "run `rag rebuild-index` to rebuild it (unchanged articles are not re-embedded)"
            )
        try:
            bm25 = bm25s.BM25.load(str(folder), load_corpus=False, mmap=True, allow_pickle=False)
            ids = np.load(folder / _IDS, allow_pickle=False)
            idf = np.load(folder / _IDF, allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"{folder} cannot be read ({exc}); run `rag rebuild-index --full`") from None
        if len(ids) != int(bm25.scores["num_docs"]) or len(idf) != len(bm25.vocab_dict):
            raise IndexCorruptError(f"{folder} is inconsistent; run `rag rebuild-index --full`")
        return cls(bm25, ids, idf)

    def term_ids(self, words: Sequence[str]) -> list[int]:
        """Vocabulary ids of the distinct known words."""
        return sorted({self.vocab[w] for w in words if w in self.vocab})

    def scores(self, question: str, context: str = "", context_weight: float = 0.0) -> np.ndarray:
        """BM25 score of every chunk, float32 (n_chunks,), in `chunk_ids` order.

        `context` (a conversation's earlier subject) adds the BM25 of its words that the question lacks, times
        `context_weight`, so the question's own words weigh more.
        """
        words = terms(question)
        ids = self.term_ids(words)
        out = (
            np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)
            if ids
            else np.zeros(len(self.chunk_ids), dtype=np.float32)
        )
        extra = sorted(set(self.term_ids(terms(context))) - set(ids)) if context and context_weight > 0 else []
        if extra:
            out = out + np.float32(context_weight) * np.asarray(self.bm25.get_scores_from_ids(extra), dtype=np.float32)
        return out

    def search(
        self,
        question: str,
        k: int,
        allowed_ids: np.ndarray | None = None,
        *,
        context: str = "",
        context_weight: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best chunks: (scores float32 (<=k,), chunk ids int64 (<=k,)), best first; zero scores left out.

        `context`, `context_weight`: see `scores`.
        """
        scores = self.scores(question, context, context_weight)
        if allowed_ids is not None:
            scores = np.where(np.isin(self.chunk_ids, allowed_ids), scores, 0.0)
        k = min(k, len(scores))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return scores[top], self.chunk_ids[top]

    def rows_holding(self, word: str) -> np.ndarray:
        """Positions (in `chunk_ids` order) of the chunks that hold the term: its column of the score matrix, read
        without scoring anything."""
        i = self.vocab.get(word)
        if i is None:
            return np.zeros(0, dtype=np.int64)
        indptr, indices = self.bm25.scores["indptr"], self.bm25.scores["indices"]
        return np.asarray(indices[int(indptr[i]) : int(indptr[i + 1])], dtype=np.int64)

    def idf_of(self, word: str) -> float:
        """Inverse document frequency of a term; unseen terms get the largest value."""
        i = self.vocab.get(word)
        return float(self.idf[i]) if i is not None else float(self.idf.max(initial=1.0))


# Term occurrences handled per step of the matrix fit: bounds its scratch memory (about 40 bytes each, ~10 MB).
_FIT_SLICE = 1 << 18


def _slices(lengths: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) ranges of documents holding about `size` term occurrences each (at least one document)."""
    bounds = np.searchsorted(np.cumsum(lengths), np.arange(size, int(lengths.sum()) + size, size), side="right")
    start = 0
    for end in bounds:
        end = max(int(end), start + 1)
        if start < len(lengths):
            yield start, min(end, len(lengths))
        start = end


class _TermList:
    """Passages' term ids held in memory, one int32 array each."""

    def __init__(self, arrays: Sequence[np.ndarray] = ()) -> None:
        self.arrays = list(arrays)

    def append(self, ids: np.ndarray) -> None:
        self.arrays.append(ids)

    def __len__(self) -> int:
        return len(self.arrays)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.arrays)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.arrays), np.int64, len(self.arrays))

    def flat(self, start: int, end: int) -> np.ndarray:
        """The term ids of passages start..end-1, one after the other."""
        return np.concatenate(self.arrays[start:end]) if end > start else np.zeros(0, np.int32)

    def close(self) -> None:
        self.arrays = []


class _TermFile:
    """Passages' term ids appended to one file of int32 as they come, read back a slice of passages at a time.

    A build of 100,000 articles has about 300,000 passages of 100-200 terms: well over 100 MB as arrays, and a
    long-lived small array per passage fragments the heap around everything else the build allocates. On disk
    they cost memory only while a slice is fitted.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self._ends = array("q")

    def append(self, ids: np.ndarray) -> None:
        np.ascontiguousarray(ids, dtype="<i4").tofile(self._file)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(ids))

    def __len__(self) -> int:
        return len(self._ends)

    def __iter__(self) -> Iterator[np.ndarray]:
        ends = np.frombuffer(self._ends, dtype=np.int64)
        for start in range(0, len(ends), 4096):
            end = min(start + 4096, len(ends))
            flat = self.flat(start, end)
            first = ends[start - 1] if start else 0
            yield from np.split(flat, ends[start : end - 1] - first)

    def lengths(self) -> np.ndarray:
        return np.diff(np.frombuffer(self._ends, dtype=np.int64), prepend=0)

    def flat(self, start: int, end: int) -> np.ndarray:
        """The term ids of passages start..end-1, one after the other."""
        self._file.flush()
        first = self._ends[start - 1] if start else 0
        last = self._ends[end - 1] if end > start else first
        return np.fromfile(self.path, dtype="<i4", count=last - first, offset=4 * first).astype(np.int32, copy=False)

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _pairs(
    term_ids: _TermList | _TermFile, start: int, end: int, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (term, document) pairs of documents start..end-1, sorted by term then document, and their counts."""
    n = end - start
    terms_ = term_ids.flat(start, end).astype(np.int64)
    docs = np.repeat(np.arange(n, dtype=np.int64), lengths[start:end])
    keys, tf = np.unique(terms_ * n + docs, return_counts=True)
    return keys // n, keys % n, tf


def _lucene_matrix(term_ids: _TermList | _TermFile, n_vocab: int, k1: float, b: float) -> tuple[dict, np.ndarray]:
    """bm25s' "lucene" BM25 scores as its CSC arrays (documents x terms), filled column by column in place, and
    each term's document frequency.

    A first pass over the slices counts each column's length, a second fills the columns. The arithmetic repeats
    bm25s' own, step for step and in the same precision, so the scores are its scores.
    """
    n_docs = len(term_ids)
    lengths = term_ids.lengths()
    df = np.zeros(n_vocab, dtype=np.int64)
    for start, end in _slices(lengths, _FIT_SLICE):
        term, _, _ = _pairs(term_ids, start, end, lengths)
        df += np.bincount(term, minlength=n_vocab)
    avg = lengths.mean() if n_docs else np.float64(0.0)
    idf = np.zeros(n_vocab, dtype=np.float32)
    seen = df > 0
    idf[seen] = np.log(1 + (n_docs - df[seen] + 0.5) / (df[seen] + 0.5))
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    nnz = int(indptr[-1])
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=np.int32)
    cursor = indptr[:-1].copy()
    for start, end in _slices(lengths, _FIT_SLICE):
        term, doc, tf = _pairs(term_ids, start, end, lengths)
        tf = tf.astype(np.float32)
        tfc = tf / (k1 * ((1 - b) + b * lengths[start:end][doc] / avg) + tf)
        first = np.flatnonzero(np.r_[True, term[1:] != term[:-1]])
        runs = np.diff(np.r_[first, len(term)])
        pos = cursor[term] + (np.arange(len(term)) - np.repeat(first, runs))
        data[pos] = idf[term] * tfc
        indices[pos] = doc + start
        cursor[term[first]] += runs
    return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}, df


class LexicalBuilder:
    """Collects chunks for a lexical index as they stream past: each chunk is kept as int32 term ids (a tenth of its
    text's memory), in memory or, given `spill`, appended to that file; the index is fitted once at the end.

    Args:
        spill: a file for the term ids (a build passes one in its work folder); removed by `build` and `close`.

    Example:
        >>> builder = LexicalBuilder()
        >>> builder.add(11, "the Rhine flows north")
        >>> builder.build().search("Rhine", 1)[1]
        array([11])
    """

    def __init__(self, spill: Path | None = None) -> None:
        self.vocab: dict[str, int] = {}
        self.chunk_ids = array("q")
        self.term_ids: _TermList | _TermFile = _TermFile(spill) if spill is not None else _TermList()

    def add(self, chunk_id: int, text: str) -> None:
        words = terms(text) or [""]
        vocab = self.vocab
        self.term_ids.append(np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), np.int32, len(words)))
        self.chunk_ids.append(int(chunk_id))

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def build(self) -> LexicalIndex:
        if "" not in self.vocab:
            # bm25s scores a question without known words against this empty term, as `LexicalIndex.build` does.
            self.vocab[""] = len(self.vocab)
        try:
            return LexicalIndex.from_ids(
                np.frombuffer(self.chunk_ids, dtype=np.int64).copy(), self.term_ids, self.vocab
            )
        finally:
            self.close()

    def close(self) -> None:
        """Drop the collected term ids (and the spill file)."""
        self.term_ids.close()
