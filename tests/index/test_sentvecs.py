"""Sentence vectors on disk (rag.index.sentvecs): 4-bit codes, streamed writes, memory-mapped reads."""

from __future__ import annotations

import numpy as np
import pytest

from rag.errors import IndexCorruptError
from rag.index.sentvecs import SentenceVectors, SentenceVectorWriter, code_dtype, decode, encode


def unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("dim", [384, 33, 2])
def test_codes_keep_cosines_within_a_few_hundredths(dim):
    x, q = unit(500, dim, 1), unit(20, dim, 2)
    y = decode(encode(x), dim)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    err = np.abs(q @ x.T - q @ y.T)
    assert err.mean() < 0.02 and err.max() < 0.1
    assert encode(x).itemsize == 2 + (dim + 1) // 2


def test_a_vector_with_one_large_component_keeps_it_exactly():
    x = np.zeros((1, 8), np.float32)
    x[0, 3] = 1.0
    np.testing.assert_allclose(decode(encode(x), 8), x, atol=1e-6)


def test_writer_streams_and_reader_maps(tmp_path):
    x = unit(300, 16)
    w = SentenceVectorWriter(tmp_path / "s.npy", 16)
    assert list(w.add(x[:100])) == list(range(100))
    assert list(w.add(x[100:])) == list(range(100, 300))
    assert list(w.add(np.zeros((0, 16), np.float32))) == []
    w.close()
    assert not (tmp_path / "s.part").exists()
    r = SentenceVectors(tmp_path / "s.npy", 16)
    assert len(r) == 300
    np.testing.assert_allclose(r[[5, 250]], decode(encode(x[[5, 250]]), 16))
    # Copied codes are the same bytes: a copied article's sentence vectors do not drift from build to build.
    w2 = SentenceVectorWriter(tmp_path / "t.npy", 16)
    w2.add_codes(r.codes([7, 8, 9]))
    w2.close()
    assert SentenceVectors(tmp_path / "t.npy", 16).codes([0, 1, 2]).tobytes() == r.codes([7, 8, 9]).tobytes()


def test_an_empty_file_is_valid(tmp_path):
    w = SentenceVectorWriter(tmp_path / "s.npy", 8)
    w.close()
    assert len(SentenceVectors(tmp_path / "s.npy", 8)) == 0


def test_wrong_or_damaged_files_name_the_fix(tmp_path):
    np.save(tmp_path / "f16.npy", np.zeros((3, 16), np.float16))
    with pytest.raises(IndexCorruptError, match="rebuild-index"):
        SentenceVectors(tmp_path / "f16.npy", 16)
    (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    with pytest.raises(IndexCorruptError, match="rebuild-index"):
        SentenceVectors(tmp_path / "bad.npy", 16)
    np.save(tmp_path / "other.npy", np.zeros(3, code_dtype(32)))
    with pytest.raises(IndexCorruptError, match="16-dimension"):
        SentenceVectors(tmp_path / "other.npy", 16)


def test_abort_leaves_nothing(tmp_path):
    w = SentenceVectorWriter(tmp_path / "s.npy", 8)
    w.add(unit(4, 8))
    w.abort()
    assert list(tmp_path.iterdir()) == []
