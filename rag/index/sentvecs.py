"""Sentence vectors on disk: 4-bit codes with one scale per vector, streamed in and memory-mapped out.

The answer path only ever takes cosines between a question and the few hundred sentences of its pooled passages,
so sentence vectors are kept at 4 bits per dimension (plus a float16 scale): 194 bytes for a 384-dimension vector
instead of 768 in float16. No training is needed, so a build can write codes from its first batch on, and an
unchanged article's codes are copied byte for byte into the next version. The cosine error this adds (about
0.01) is measured in docs/benchmarks.md against the figures of `rag eval squad`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag.errors import IndexCorruptError

__all__ = ["ENCODING", "FILE", "SentenceVectors", "SentenceVectorWriter", "code_dtype", "decode", "encode"]

FILE = "sentence_vectors.npy"
ENCODING = "int4-scaled"
"""How the file stores vectors (recorded in the manifest)."""
_LEVELS = 7  # signed 4-bit values -7..7, stored as 1..15 (0 unused)


def code_dtype(dimension: int) -> np.dtype:
    """The record of one vector: a float16 scale and dimension/2 bytes of packed 4-bit values."""
    return np.dtype([("scale", "<f2"), ("codes", "u1", ((int(dimension) + 1) // 2,))])


def encode(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors (n, dim) float -> records of `code_dtype(dim)`; each vector is scaled by its largest component."""
    x = np.asarray(vectors, dtype=np.float32)
    n, dim = x.shape
    out = np.zeros(n, dtype=code_dtype(dim))
    if not n:
        return out
    scale = np.abs(x).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float16)
    q = np.rint(x / scale.astype(np.float32)[:, None] * _LEVELS).clip(-_LEVELS, _LEVELS).astype(np.int16) + 8
    if dim % 2:
        q = np.hstack([q, np.full((n, 1), 8, np.int16)])
    out["scale"] = scale
    out["codes"] = ((q[:, 0::2] << 4) | q[:, 1::2]).astype(np.uint8)
    return out


def decode(records: np.ndarray, dimension: int) -> np.ndarray:
    """Records -> float32 unit vectors (n, dimension)."""
    codes = np.asarray(records["codes"])
    q = np.empty((len(codes), codes.shape[1] * 2), dtype=np.float32)
    q[:, 0::2] = codes >> 4
    q[:, 1::2] = codes & 0x0F
    x = (q[:, :dimension] - 8.0) * (np.asarray(records["scale"], dtype=np.float32)[:, None] / _LEVELS)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.clip(norms, 1e-12, None)


class SentenceVectorWriter:
    """Appends sentence vectors (or copied codes) as they come; `close()` writes the final .npy file.

    Rows are numbered in the order they are appended. Until `close()` the records go to a side file, so the
    memory a build needs does not grow with the number of sentences.

    Args:
        path: the .npy file to write.
        dimension: vector length.
    """

    def __init__(self, path: Path, dimension: int):
        self.path = Path(path)
        self.dimension = int(dimension)
        self.dtype = code_dtype(dimension)
        self.rows = 0
        self._part = self.path.with_suffix(".part")
        self._fh = open(self._part, "wb")

    def add(self, vectors: np.ndarray) -> range:
        """Append unit vectors; returns their row numbers."""
        return self.add_codes(encode(vectors))

    def add_codes(self, records: np.ndarray) -> range:
        """Append already encoded records (copied from a previous version); returns their row numbers."""
        records = np.ascontiguousarray(records, dtype=self.dtype)
        self._fh.write(records.tobytes())
        start = self.rows
        self.rows += len(records)
        return range(start, self.rows)

    def close(self) -> None:
        self._fh.close()
        # The .npy header, then the side file copied through a small buffer: mapping both files would keep every
        # page of them resident at the end of a build (two copies of the codes in the process's memory).
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.rows,)}
        with open(self.path, "wb") as out, open(self._part, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 1 << 20)
        os.remove(self._part)

    def abort(self) -> None:
        self._fh.close()
        try:
            os.remove(self._part)
        except OSError:
            pass


class SentenceVectors:
    """Read access to a version's sentence vectors (memory-mapped records, decoded on demand).

    `vectors[rows]` gives float32 unit vectors; `codes(rows)` the raw records, for copying into a new version.
    """

    def __init__(self, path: Path, dimension: int):
        self.path = Path(path)
        self.dimension = int(dimension)
        try:
            self._records = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"{self.path} cannot be read ({exc}); run `rag rebuild-index`") from None
        if self._records.dtype != code_dtype(self.dimension) or self._records.ndim != 1:
            raise IndexCorruptError(
                f"{self.path} does not hold {self.dimension}-dimension sentence codes; run `rag rebuild-index`"
            )

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, rows: npt.ArrayLike) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        return decode(self._records[rows], self.dimension)

    def codes(self, rows: npt.ArrayLike) -> np.ndarray:
        return np.asarray(self._records[np.asarray(rows, dtype=np.int64)])
