"""Embedding backends: the ONNX export (fp32 and int8) reproduces the sentence-transformers pipeline.

A tiny random BERT in sentence-transformers layout is exported once per session into a private cache; the
bundled MiniLM is compared too (its export is cached per machine, like the application's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings, resolve_model_path
from rag.errors import ConfigError

pytestmark = pytest.mark.model

TEXTS = [
    "What would lift the pause on intelligence sharing?",
    "short",
    "The central bank raised interest rates for the third time this year, citing inflation. " * 6,  # truncated
    "Ünïcödé, punctuation — and numbers: 3.14, 2,225!",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim BERT saved as a sentence-transformers folder (Transformer, mean Pooling, Normalize)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-st") / "tiny-bert"
    bundled = Path(resolve_model_path("all-MiniLM-L6-v2"))
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(bundled / name, folder / name)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24, "do_lower_case": False}))
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    (folder / "2_Normalize").mkdir()
    return folder


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory, tiny_model) -> Path:
    """Exports the tiny model once for the session into a private cache folder."""
    from rag.index.onnx_export import ensure_export

    cache = tmp_path_factory.mktemp("onnx-cache")
    old = os.environ.get("RAG_ONNX_CACHE")
    os.environ["RAG_ONNX_CACHE"] = str(cache)
    try:
        ensure_export(tiny_model, "onnx-int8")
    finally:
        if old is None:
            os.environ.pop("RAG_ONNX_CACHE", None)
        else:
            os.environ["RAG_ONNX_CACHE"] = old
    return cache


@pytest.fixture
def use_cache(onnx_cache, monkeypatch) -> Path:
    monkeypatch.setenv("RAG_ONNX_CACHE", str(onnx_cache))
    return onnx_cache


def test_export_writes_both_files_once_into_the_cache(use_cache, tiny_model):
    from rag.index.onnx_export import BACKEND_FILES, ensure_export, export_dir

    folder = export_dir(tiny_model)
    assert folder.parent == use_cache
    info = json.loads((folder / "export.json").read_text())
    assert info["pooling"] == "mean" and info["max_seq_length"] == 24 and info["normalize"] is True
    mtimes = {}
    for backend, name in BACKEND_FILES.items():
        path = ensure_export(tiny_model, backend)
        assert path == folder / name and path.stat().st_size > 0
        mtimes[backend] = path.stat().st_mtime_ns
    for backend in BACKEND_FILES:  # a second call reuses the files
        assert ensure_export(tiny_model, backend).stat().st_mtime_ns == mtimes[backend]
    assert not any(p.name.startswith(".tmp-") for p in use_cache.iterdir())


def test_onnx_vectors_match_sentence_transformers(use_cache, tiny_model):
    from rag.index.embedding import SentenceTransformerEmbedder

    torch_emb = SentenceTransformerEmbedder(str(tiny_model), "torch")
    onnx_emb = SentenceTransformerEmbedder(str(tiny_model), "onnx")
    int8_emb = SentenceTransformerEmbedder(str(tiny_model), "onnx-int8")
    ref = torch_emb.embed_documents(TEXTS)
    got = onnx_emb.embed_documents(TEXTS)
    assert got.shape == ref.shape == (len(TEXTS), 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    for q in TEXTS:
        np.testing.assert_allclose(onnx_emb.embed_query(q), torch_emb.embed_query(q), atol=1e-5)
    quant = int8_emb.embed_documents(TEXTS)
    cos = (quant * ref).sum(axis=1)
    assert cos.min() > 0.9, cos  # int8 is an approximation; the SQuAD bar is measured in docs/benchmarks.md
    assert onnx_emb.dimension == torch_emb.dimension == 32
    assert onnx_emb.max_tokens == torch_emb.max_tokens == 22


def test_backend_switch_through_settings_builds_and_answers(use_cache, tiny_model, tmp_path):
    from rag import build_index, open_index
    from rag.index.embedding import make_embedder

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("The river flooded the valley. Farmers moved their cattle to higher ground.")
    (src / "b.txt").write_text("The bank raised interest rates. Markets fell on the news.")
    for backend in ("onnx", "onnx-int8", "torch"):
        settings = Settings(model=str(tiny_model), backend=backend, chunk_size=16, chunk_overlap=4)
        index = tmp_path / f"index-{backend}"
        build_index(src, index, settings)
        idx = open_index(index, settings=settings)
        assert idx.manifest["settings"]["backend"] == backend
        assert idx.embedder is make_embedder(str(tiny_model), backend)
        assert idx.embedder.backend == backend
        answer = idx.query("what did the bank do?", abstain_threshold=0.0)
        for p in answer.passages:
            assert idx.document(p.doc_id).text[p.start : p.end] == p.text
        idx.close()


def test_asking_with_onnx_never_imports_torch(use_cache, tiny_model):
    code = (
        "import sys\n"
        "from rag.index.embedding import SentenceTransformerEmbedder\n"
        f"e = SentenceTransformerEmbedder({str(tiny_model)!r}, 'onnx-int8')\n"
        "v = e.embed_query('what would lift the pause?')\n"
        "print(v.shape[0], 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAG_ONNX_CACHE": str(use_cache)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["32", "False", "False"]


def test_unsupported_pipelines_are_refused_with_the_fix(tmp_path, tiny_model, monkeypatch):
    from rag.index.onnx_export import ensure_export

    monkeypatch.setenv("RAG_ONNX_CACHE", str(tmp_path / "cache"))
    odd = tmp_path / "odd"
    shutil.copytree(tiny_model, odd)
    modules = json.loads((odd / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (odd / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match="--backend torch"):
        ensure_export(odd, "onnx")
    with pytest.raises(ConfigError, match="--backend torch"):
        ensure_export(tmp_path / "missing", "onnx")
    with pytest.raises(ConfigError, match="unknown onnx backend"):
        ensure_export(tiny_model, "tensorrt")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_bundled_model_onnx_matches_torch():
    """The default model: ONNX fp32 equals PyTorch; int8 stays close (its retrieval cost is in docs/benchmarks.md)."""
    from rag.index.embedding import SentenceTransformerEmbedder

    torch_emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2", "torch")
    onnx_emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2", "onnx")
    int8_emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2", "onnx-int8")
    ref = torch_emb.embed_documents(TEXTS)
    np.testing.assert_allclose(onnx_emb.embed_documents(TEXTS), ref, atol=1e-5)
    np.testing.assert_allclose(onnx_emb.embed_query(TEXTS[0]), torch_emb.embed_query(TEXTS[0]), atol=1e-5)
    assert (int8_emb.embed_documents(TEXTS) * ref).sum(axis=1).min() > 0.97


def test_batches_side_by_side_give_the_vectors_of_one_at_a_time(use_cache, tiny_model):
    from rag.index.onnx_export import BACKEND_FILES, OnnxEncoder, export_dir

    onnx_file = export_dir(tiny_model) / BACKEND_FILES["onnx-int8"]
    texts = TEXTS * 5
    one = OnnxEncoder(tiny_model, onnx_file, threads=1).encode(texts, batch_size=3)
    calls: list[int] = []
    two = OnnxEncoder(tiny_model, onnx_file, threads=2).encode(texts, batch_size=3, progress=calls.append)
    np.testing.assert_allclose(two, one, atol=1e-6)
    assert sum(calls) == len(texts) and len(calls) == 7


def test_signed_copy_of_unsigned_int8_weights_computes_the_same(use_cache, tiny_model, tmp_path, monkeypatch):
    import onnx
    import onnxruntime as ort

    from rag.index import onnx_export as ox

    native = ox.int8_weights()
    unsigned = tmp_path / "u8.onnx"
    ox._quantize_int8(ox.ensure_export(tiny_model, "onnx"), unsigned, signed=False)
    monkeypatch.setattr(ox, "int8_weights", lambda: "u8")
    assert ox.weights_for_this_cpu(unsigned) == unsigned  # AVX2 machines keep unsigned weights
    monkeypatch.setattr(ox, "int8_weights", lambda: "s8")
    signed = ox.weights_for_this_cpu(unsigned)
    assert signed != unsigned and signed.is_file()
    assert ox.weights_for_this_cpu(unsigned) == signed  # made once, then read from the cache
    graph = onnx.load(str(signed)).graph
    types = {t.name: t.data_type for t in graph.initializer}
    weights = [n.input[1] for n in graph.node if n.op_type == "MatMulInteger"]
    assert weights and all(types[w] == onnx.TensorProto.INT8 for w in weights)

    ids = np.array([[101, 2054, 2052, 6336, 1996, 8724, 1029, 102], [101, 2460, 102, 0, 0, 0, 0, 0]], np.int64)
    feed = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}
    run = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0] for p in (unsigned, signed)
    ]
    if native == "s8":  # VNNI multiplies both exactly
        np.testing.assert_array_equal(run[1], run[0])
    else:
        np.testing.assert_allclose(run[1], run[0], atol=1e-2)

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    assert ox.weights_for_this_cpu(broken) == broken  # anything odd: the file as it is
