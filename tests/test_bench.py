"""`rag bench`: the report's figures are computed from what was run, on a small corpus and a fake embedder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.bench import (
    BenchConfig,
    RssSampler,
    SharedVectors,
    _change_one,
    add_ratios,
    bench_synthetic,
    format_table,
    percentiles,
    run_bench,
)
from rag.cli import build_parser, main


def test_percentiles_use_nearest_rank_in_milliseconds():
    xs = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    p = percentiles(xs)
    assert (p["p50_ms"], p["p95_ms"], p["p99_ms"], p["n"]) == (50.5, 95.0, 99.0, 100)
    assert percentiles([0.002])["p99_ms"] == 2.0
    assert percentiles([])["n"] == 0


def test_config_parsing_and_ratios():
    assert BenchConfig.parse("onnx-int8") == BenchConfig("onnx-int8", "faiss")
    assert BenchConfig.parse("torch/milvus").name == "torch/milvus"
    configs = [{"config": "a", "query": {"p50_ms": 20.0}, "embed": {"tokens_per_s": 1000.0}},
               {"config": "b", "query": {"p50_ms": 5.0}, "embed": {"tokens_per_s": 2500.0}}]
    ratios = add_ratios(configs)
    assert ratios["query p50 ms"] == {"a": 1.0, "b": 0.25}
    assert ratios["embed tokens/s"]["b"] == 2.5


def test_server_configurations_name_their_uri():
    server = BenchConfig.parse("onnx-int8/milvus@http://127.0.0.1:19530")
    assert (server.backend, server.store, server.milvus_uri) == ("onnx-int8", "milvus", "http://127.0.0.1:19530")
    assert server.name == "onnx-int8/milvus-server" and BenchConfig.parse("onnx-int8/milvus").name == "onnx-int8/milvus"


def test_shared_vectors_embed_each_text_once(fake_embedder):
    shared = SharedVectors(fake_embedder)
    first = shared.embed_documents(["a cat", "a dog", "a cat"])
    assert fake_embedder.calls == 2 and shared.name == fake_embedder.name  # two distinct texts
    again = shared.embed_documents(["a dog", "a cat"])
    assert fake_embedder.calls == 2  # nothing new to embed
    np.testing.assert_array_equal(again, first[[1, 0]])
    np.testing.assert_array_equal(first[0], fake_embedder.embed_documents(["a cat"])[0])
    assert shared.embed_documents([]).shape == (0, fake_embedder.dimension)


def test_rss_sampler_sees_a_temporary_allocation():
    with RssSampler(interval_s=0.005) as rss:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        import time

        time.sleep(0.05)
        del block
    assert rss.peak_mb - rss.start_mb > 32


def test_change_one_edits_exactly_one_record(tmp_path):
    src = tmp_path / "a.jsonl"
    recs = [{"id": f"r{i}", "text": f"Text {i}."} for i in range(5)]
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    what = _change_one(tmp_path)
    after = [json.loads(l) for l in src.read_text().splitlines()]
    changed = [a["id"] for a, b in zip(after, recs) if a != b]
    assert changed == ["r2"] and "r2" in what


@pytest.fixture
def small_source(tmp_path):
    src = tmp_path / "articles.jsonl"
    lines = []
    for i in range(10):
        text = (f"Story {i}. The council approved a new bridge over the river in district {i}. "
                f"Work starts in spring and costs {i + 2} million pounds. Residents welcomed the plan.")
        lines.append(json.dumps({"id": f"s{i}", "title": f"Story {i}", "text": text}))
    src.write_text("\n".join(lines) + "\n")
    return src


def test_run_bench_reports_every_figure_from_one_process(small_source, tmp_path, fake_embedder):
    report = run_bench(
        [BenchConfig("torch"), BenchConfig("onnx", label="second")], small_source, rounds=1, embed_sample=4,
        cold_start_runs=0, embedder=fake_embedder, work=tmp_path / "work",
    )
    first, second = report["configs"]
    assert first["config"] == "torch" and second["config"] == "second"
    build = first["build"]
    assert build["documents"] == 10 and build["chunks"] >= 10 and build["sentences"] >= 30
    assert build["documents_per_s"] == pytest.approx(10 / build["seconds"], rel=0.01)
    assert build["peak_rss_mb"] >= build["rss_before_mb"] > 0
    assert first["embed"]["texts"] == 4 and first["embed"]["tokens"] > 0
    q = first["query"]
    assert q["n"] == 30 and q["p50_ms"] <= q["p95_ms"] <= q["p99_ms"]
    assert first["index"]["disk_mb"] > 0 and first["index"]["store"]["index_type"] == "flat"
    inc = first["incremental"]
    assert inc["updated"] == 1 and inc["added"] == inc["removed"] == 0
    per_doc = (build["chunks"] + build["sentences"]) / build["documents"]
    assert 0 < inc["texts_embedded"] < 3 * per_doc, "only the changed story was embedded"
    assert report["ratios"]["query p50 ms"]["torch"] == 1.0
    assert "cold_start" not in first  # skipped with an injected embedder
    table = format_table(report)
    assert "query p50 ms" in table and "second" in table and "incremental rebuild" in table
    assert json.loads(json.dumps(report, default=str))["machine"]["cpus"] >= 1


def test_synthetic_scale_test_measures_recall_against_exact_search(tmp_path):
    r = bench_synthetic(4000, dim=32, queries=40, exact_max=1000, work=tmp_path / "syn")
    assert r["layout"]["index_type"] == "ivf_sq8" and r["layout"]["nlist"] >= 16
    assert r["recall_at_k"] >= 0.9 and r["mmap"]["recall_at_k"] == r["recall_at_k"]
    assert r["mmap"]["mapped"] is True
    assert r["file_mb"] < 4000 * 32 * 4 / 2**20, "8-bit codes are smaller than float32 vectors"
    exact = bench_synthetic(500, dim=32, queries=20, work=tmp_path / "syn2")
    assert exact["layout"]["index_type"] == "flat" and exact["recall_at_k"] == 1.0


def test_command_line(capsys, tmp_path):
    args = build_parser().parse_args(["bench", "--compare", "torch,onnx-int8", "--limit", "50", "--json"])
    assert args.compare == "torch,onnx-int8" and args.limit == 50 and args.func.__name__ == "cmd_bench"
    out = tmp_path / "r.json"
    assert main(["bench", "--synthetic", "300", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic: 300 x 384 vectors" in printed
    saved = json.loads(out.read_text())
    assert saved["configs"] == [] and saved["synthetic"]["recall_at_k"] == 1.0


def test_query_latency_reports_the_first_pass_separately(fake_seed_index):
    from rag import open_index
    from rag.bench import _query_latency

    folder, emb = fake_seed_index
    idx = open_index(folder, embedder=emb)
    out = _query_latency(idx, emb, ["what would lift the pause?", "who is Waltz?"], rounds=3)
    idx.close()
    assert out["n"] == 6 and out["first_pass"]["n"] == 2
