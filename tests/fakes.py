"""A deterministic, model-free embedder for fast offline tests: hashed words and character trigrams."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


class FakeEmbedder:
    """Bag of hashed word and trigram features, L2-normalized; similar wording gives similar vectors."""

    def __init__(self, dimension: int = 256, name: str = "fake-hash-embedder", max_tokens: int = 254):
        self.name = name
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.calls = 0
        self.batches: list[int] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + text.count(",") + text.count(".")

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count_tokens(t) for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        words = [w.lower() for w in _WORD.findall(text)]
        feats = words + [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        for f in feats:
            h = int.from_bytes(hashlib.md5(f.encode()).digest()[:4], "little")
            v[h % self.dimension] += 1.0 if (h >> 31) & 1 else -1.0
        n = np.linalg.norm(v)
        if n == 0:
            v[0] = 1.0
            n = 1.0
        return v / n

    def embed_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        self.calls += len(texts)
        self.batches.append(len(texts))
        out = np.stack([self._vec(t) for t in texts]) if len(texts) else np.zeros((0, self.dimension), np.float32)
        if progress and len(texts):
            progress(len(texts))
        return out.astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self.calls += 1
        return self._vec(text)


class FakeReader:
    """A model-free reader with the Reader contract: a sentence's margin is the number of question words it shares
    minus 2; its short answer is its first number, else its first capitalized word the question lacks, else itself."""

    _TOKEN = re.compile(r"\d[\d,.]*\d|\d|[A-Z]\w+")

    def __init__(self):
        self.windows_read = 0

    def read(self, question, windows, texts=None):
        from rag.answer.reader import Reading

        q_words = {w.lower() for w in _WORD.findall(question)}
        out = []
        for w in windows:
            self.windows_read += 1
            readings = []
            for s in w.sentences:
                shared = len(q_words & {x.lower() for x in _WORD.findall(s.text)})
                a, b = 0, len(s.text)
                for m in self._TOKEN.finditer(s.text):
                    if m.group(0).lower() not in q_words and (m.group(0)[0].isdigit() or m.start() > 0):
                        a, b = m.start(), m.end()
                        break
                readings.append(Reading(s, float(shared - 2), s.start + a, s.start + b))
            out.append(readings)
        return out
