"""The FAISS store: the embedded default, kept in FAISS's own file format inside the index folder (no pickle)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import IndexCorruptError, IndexMismatchError

if TYPE_CHECKING:
    import faiss

__all__ = ["FaissStore", "choose_layout", "flat_sq8", "sq8_range", "EXACT_MAX"]


EXACT_MAX = 100_000
"""Stores up to this many vectors search exhaustively (8-bit codes, `flat_sq8`); larger ones switch to IVF with
8-bit scalar quantization, where a query scans a few percent of the vectors instead of all."""


# Stored vectors decoded at a time when a store turns IVF: 25 MB of float32 at 384 dimensions.
_DECODE_SLICE = 16_384


def choose_layout(n: int, exact_max: int | None = None) -> dict[str, Any]:
    """The index layout for a store of `n` vectors.

    Args:
        n: number of vectors (expected or current, whichever is larger).
        exact_max: largest store that is searched exactly.

    Returns:
        {"index_type": "flat"} or {"index_type": "ivf_sq8", "nlist": lists, "nprobe": lists probed per query}.
    """
    if n <= (EXACT_MAX if exact_max is None else exact_max):
        return {"index_type": "flat"}
    # About 4 * sqrt(n) lists (FAISS's rule of thumb), as a power of two; probing 1/32 of them kept
    # recall@10 above 0.95 in `rag bench --synthetic`.
    nlist = 1 << max(4, min(16, round(math.log2(4 * math.sqrt(n)))))
    return {"index_type": "ivf_sq8", "nlist": nlist, "nprobe": max(16, nlist // 32)}


def sq8_range(dimension: int) -> float:
    """The component range 8-bit codes cover: [-r, r] with r = min(1, 10 / sqrt(dimension)).

    A unit vector's components spread as about 1 / sqrt(dimension); ten times that (0.51 for 384 dimensions) is
    far beyond any all-MiniLM-L6-v2 vector of the BBC set (largest 0.29), and small dimensions get the whole [-1, 1].
    A larger component is clipped, which costs accuracy, not correctness.
    """
    return min(1.0, 10.0 / math.sqrt(max(int(dimension), 1)))


def flat_sq8(dimension: int) -> faiss.IndexScalarQuantizer:
    """An exhaustive-search index of 8-bit codes: a quarter of float32's size, cosines within about 0.002.

    The codes cover a fixed range (`sq8_range`) in every dimension rather than one learnt from the data, so the
    quantizer needs no training: the first vector of a build is coded as well as the millionth, and a store grown
    article by article codes its vectors exactly as one built at once. On 20,000 BBC sentence vectors the top 30
    by 8-bit codes hold 98.6% of the exact top 30 (float16: 99.99%).
    """
    import faiss

    d, r = int(dimension), sq8_range(dimension)
    index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT)
    index.train(np.array([[-r] * d, [r] * d], dtype=np.float32))
    return index


class FaissStore:
    """FAISS inner-product index keyed by id: exact (8-bit codes in an id map, `flat_sq8`) up to `exact_max` vectors,
    IVF-SQ8 beyond.

    The layout is chosen as vectors arrive: adding past `exact_max` retrains the store as IVF with 8-bit
    scalar quantization (parameters in `params()`, hence in the manifest). A loaded store is memory-mapped
    from its file; the first change reads it into memory, so the published file is never written through.

    Args:
        dimension: vector length.
        index: an existing FAISS index (IndexIDMap2 around `flat_sq8`, or IndexIVFScalarQuantizer).
        exact_max: largest store searched exactly (default EXACT_MAX).
        expected_size: vectors the caller expects to add in all; sizes the IVF lists when given.
    """

    kind = "faiss"
    FILE = "vectors.faiss"

    def __init__(
        self,
        dimension: int,
        index: Any | None = None,
        *,
        exact_max: int | None = None,
        expected_size: int = 0,
        path: Path | None = None,
    ):
        import faiss

        self.dimension = int(dimension)
        self._faiss = faiss
        self.exact_max = int(EXACT_MAX if exact_max is None else exact_max)
        self.expected_size = int(expected_size)
        self.index = index if index is not None else faiss.IndexIDMap2(flat_sq8(self.dimension))
        self._path = path  # set while the index is a read-only map of this file

    @property
    def mapped(self) -> bool:
        """True while the index is memory-mapped from its file (read-only)."""
        return self._path is not None

    @property
    def index_type(self) -> str:
        return "ivf_sq8" if isinstance(self._faiss.downcast_index(self.index), self._faiss.IndexIVF) else "flat"

    def _ivf(self):
        return self._faiss.extract_index_ivf(self.index)

    def _own(self) -> None:
        """Replace a memory-mapped index by an in-memory copy before changing it."""
        if self._path is not None:
            nprobe = self._ivf().nprobe if self.index_type != "flat" else None
            self.index = self._faiss.read_index(str(self._path))
            if nprobe:
                self._ivf().nprobe = nprobe
            self._path = None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"vectors of dimension {vectors.shape[-1]} cannot go into a {self.dimension}-dimension store"
            )
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids) == 0:
            return
        self.remove(ids)
        self._own()
        total = int(self.index.ntotal) + len(ids)
        if self.index_type == "flat" and total > self.exact_max:
            self._to_ivf(vectors, max(total, self.expected_size))
        self.index.add_with_ids(vectors, ids)

    def _to_ivf(self, incoming: np.ndarray, size: int) -> None:
        """Retrain as IVF-SQ8 on the stored and incoming vectors, keeping every stored vector and id.

        The stored vectors are decoded a slice at a time (all of them at once would be 600 MB per million), and
        only the k-means sample is gathered whole.
        """
        faiss = self._faiss
        layout = choose_layout(size, self.exact_max)
        n_old = int(self.index.ntotal)
        total = n_old + len(incoming)
        # k-means needs ~40 points per list; more only slows training.
        rng = np.random.default_rng(0)
        pick = rng.choice(total, min(total, 40 * layout["nlist"]), replace=False)
        sample = np.empty((len(pick), self.dimension), dtype=np.float32)
        old = pick < n_old
        if old.any():
            sample[old] = self.index.index.reconstruct_batch(pick[old].astype(np.int64))
        sample[~old] = incoming[pick[~old] - n_old]
        ivf = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(self.dimension),
            self.dimension,
            layout["nlist"],
            faiss.ScalarQuantizer.QT_8bit,
            faiss.METRIC_INNER_PRODUCT,
        )
        ivf.cp.spherical = True  # unit vectors: centroids on the sphere
        ivf.cp.niter = 10
        ivf.train(sample)
        del sample
        ivf.nprobe = layout["nprobe"]
        # IVF keeps ids itself (an IndexIDMap around it breaks on removal: its id list and IVF's labels drift).
        if n_old:
            old_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            for start in range(0, n_old, _DECODE_SLICE):
                end = min(start + _DECODE_SLICE, n_old)
                ivf.add_with_ids(self.index.index.reconstruct_n(start, end - start), old_ids[start:end])
        self.index = ivf

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0 or self.index.ntotal == 0:
            return 0
        self._own()
        return int(self.index.remove_ids(self._faiss.IDSelectorBatch(ids)))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"query of dimension {queries.shape[1]} against a {self.dimension}-dimension store; "
                "the index was built with another model: run `rag rebuild-index`"
            )
        nq = len(queries)
        if self.index.ntotal == 0 or k <= 0:
            return np.full((nq, max(k, 0)), -np.inf, dtype=np.float32), np.full((nq, max(k, 0)), -1, dtype=np.int64)
        params = None
        if allowed_ids is not None:
            allowed = np.ascontiguousarray(allowed_ids, dtype=np.int64)
            if len(allowed) == 0:
                return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
            sel = self._faiss.IDSelectorBatch(allowed)
            if self.index_type == "flat":
                # faiss's stubs omit the keyword arguments its Python wrapper adds to every SearchParameters class.
                params = self._faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            else:
                # A filter may leave the probed lists nearly empty: probe them all, scoring allowed ids only.
                params = self._faiss.SearchParametersIVF(sel=sel, nprobe=self._ivf().nlist)  # type: ignore[call-arg]
        if nq <= 4:
            # A handful of queries finish faster on one thread than OpenMP takes to wake the others (tens of ms
            # on a busy machine); the setting belongs to the calling thread only.
            threads = self._faiss.omp_get_max_threads()
            self._faiss.omp_set_num_threads(1)
            try:
                scores, ids = self.index.search(queries, k, params=params)
            finally:
                self._faiss.omp_set_num_threads(threads)
        else:
            scores, ids = self.index.search(queries, k, params=params)
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return scores, ids.astype(np.int64)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def save(self, folder: Path) -> list[str]:
        self._faiss.write_index(self.index, str(Path(folder) / self.FILE))
        return [self.FILE]

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "dimension": self.dimension,
            "metric": "inner_product",
            "index_type": self.index_type,
            "exact_max": self.exact_max,
            "mmap": True,
        }
        if self.index_type == "flat":
            out["factory"] = "IDMap2,SQ8_uniform"
        else:
            ivf = self._ivf()
            out.update(factory=f"IVF{ivf.nlist},SQ8", nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
        return out

    def close(self) -> None:
        pass

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any], *, mmap: bool = True) -> FaissStore:
        """Open a saved store; memory-mapped (read-only until changed) unless `mmap` is False."""
        import faiss

        path = Path(folder) / cls.FILE
        if not path.is_file():
            raise IndexCorruptError(f"{path} is missing; run `rag rebuild-index`")
        ivf = params.get("index_type", "flat") != "flat"
        # Flat codes map in place (MMAP_IFC); IVF lists map through OnDiskInvertedLists (MMAP).
        flags = (faiss.IO_FLAG_MMAP if ivf else faiss.IO_FLAG_MMAP_IFC) | faiss.IO_FLAG_READ_ONLY
        index = None
        if mmap:
            try:
                index = faiss.read_index(str(path), flags)
            except RuntimeError:
                index = None  # a layout this FAISS cannot map: read it into memory instead
        mapped = index is not None
        if index is None:
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise IndexCorruptError(
                    f"{path} cannot be read ({str(exc).splitlines()[0][:120]}); run `rag rebuild-index`"
                ) from None
        if index.d != int(params.get("dimension", index.d)):
            raise IndexMismatchError(
                f"{path} has dimension {index.d}, manifest says {params['dimension']}; run `rag rebuild-index`"
            )
        if not isinstance(faiss.downcast_index(index), (faiss.IndexIDMap2, faiss.IndexIVF)):
            raise IndexCorruptError(f"{path} is not an id-keyed FAISS index; run `rag rebuild-index`")
        store = cls(index.d, index, exact_max=params.get("exact_max"), path=path if mapped else None)
        if store.index_type != "flat" and params.get("nprobe"):
            store._ivf().nprobe = int(params["nprobe"])
        return store
