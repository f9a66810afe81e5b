"""`rag bench`: the report's figures are computed from what was run, on a small corpus and a fake embedder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rag.cli.commands import build_parser, main
from rag.evaluation.bench.builds import _change_one
from rag.evaluation.bench.collections import write_synthetic_collection
from rag.evaluation.bench.commands import parse_configs
from rag.evaluation.bench.configs import QUESTIONS, BenchConfig, SharedVectors
from rag.evaluation.bench.latency import percentiles
from rag.evaluation.bench.memory import RssSampler
from rag.evaluation.bench.report import add_ratios, format_table
from rag.evaluation.bench.run import run_bench
from rag.evaluation.bench.scale import _scale_subprocess, bench_scale
from rag.evaluation.bench.synthetic import bench_synthetic


def test_percentiles_use_nearest_rank_in_milliseconds():
    xs = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    p = percentiles(xs)
    assert (p["p50_ms"], p["p95_ms"], p["p99_ms"], p["n"]) == (50.5, 95.0, 99.0, 100)
    assert percentiles([0.002])["p99_ms"] == 2.0
    assert percentiles([])["n"] == 0


def test_config_parsing_and_ratios():
    assert BenchConfig.parse("onnx-int8") == BenchConfig("onnx-int8", "faiss")
    assert BenchConfig.parse("torch/milvus").name == "torch/milvus"
    configs = [
        {"config": "a", "query": {"p50_ms": 20.0}, "embed": {"tokens_per_s": 1000.0}},
        {"config": "b", "query": {"p50_ms": 5.0}, "embed": {"tokens_per_s": 2500.0}},
    ]
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
    after = [json.loads(line) for line in src.read_text().splitlines()]
    changed = [a["id"] for a, b in zip(after, recs) if a != b]
    assert changed == ["r2"] and "r2" in what


@pytest.fixture
def small_source(tmp_path):
    src = tmp_path / "articles.jsonl"
    lines = []
    for i in range(10):
        text = (
            f"Story {i}. The council approved a new bridge over the river in district {i}. "
            f"Work starts in spring and costs {i + 2} million pounds. Residents welcomed the plan."
        )
        lines.append(json.dumps({"id": f"s{i}", "title": f"Story {i}", "text": text}))
    src.write_text("\n".join(lines) + "\n")
    return src


def test_run_bench_reports_every_figure_from_one_process(small_source, tmp_path, fake_embedder):
    report = run_bench(
        [BenchConfig("torch"), BenchConfig("onnx", label="second")],
        small_source,
        rounds=1,
        embed_sample=4,
        cold_start_runs=0,
        embedder=fake_embedder,
        work=tmp_path / "work",
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
    # "flat" searches every vector, as 8-bit codes: near-ties of random 32-dimension vectors may swap.
    assert exact["layout"]["index_type"] == "flat" and exact["recall_at_k"] >= 0.9


def test_command_line(capsys, tmp_path):
    args = build_parser().parse_args(["bench", "--compare", "torch,onnx-int8", "--limit", "50", "--json"])
    assert args.compare == "torch,onnx-int8" and args.limit == 50 and args.func.__name__ == "cmd_bench"
    out = tmp_path / "r.json"
    assert main(["bench", "--synthetic", "300", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic: 300 x 384 vectors" in printed
    saved = json.loads(out.read_text())
    assert saved["configs"] == [] and saved["synthetic"]["recall_at_k"] >= 0.9  # 8-bit codes: near-ties may swap


def test_query_latency_reports_the_first_pass_separately(fake_seed_index):
    from rag import open_index
    from rag.evaluation.bench.latency import query_latency

    folder, emb = fake_seed_index
    idx = open_index(folder, embedder=emb)
    out = query_latency(idx, emb, ["what would lift the pause?", "who is Waltz?"], rounds=3)
    idx.close()
    assert out["n"] == 6 and out["first_pass"]["n"] == 2


# -- the tutorial baseline --------------------------------------------------------------------------------------


class FakeTokenizer:
    def tokenize(self, text):
        return re.findall(r"\w+|[^\w\s]", text)


class FakeSentenceTransformer:
    """The part of SentenceTransformer that the tutorial uses, over the fake embedder."""

    def __init__(self, embedder):
        self.tokenizer = FakeTokenizer()
        self.embedder = embedder
        self.calls = []

    def encode(self, texts, batch_size=32, normalize_embeddings=False):
        self.calls.append((len(texts), batch_size, normalize_embeddings))
        return self.embedder.embed_documents(list(texts))


@pytest.fixture
def long_source(tmp_path):
    """Six articles of four paragraphs, about 320 fake tokens each: the tutorial cuts each into several chunks."""
    src = tmp_path / "long.jsonl"
    with open(src, "w") as f:
        for i in range(6):
            paragraphs = [
                " ".join(f"Paragraph {p} of story {i} says that item {j} costs {i + j} pounds." for j in range(7))
                for p in range(4)
            ]
            f.write(json.dumps({"id": f"l{i}", "title": f"Long story {i}", "text": "\n\n".join(paragraphs)}) + "\n")
    return src


def test_tutorial_is_timed_beside_the_engine_and_its_speedup_reported(long_source, tmp_path, fake_embedder):
    import faiss
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.config import Settings
    from rag.ingest.files import load_documents

    model = FakeSentenceTransformer(fake_embedder)
    configs = parse_configs(["tutorial", "torch"], Settings())
    report = run_bench(
        configs,
        long_source,
        rounds=1,
        embed_sample=0,
        incremental=False,
        cold_start_runs=0,
        embedder=fake_embedder,
        tutorial_model=model,
        work=tmp_path / "work",
    )
    tutorial, engine = report["configs"]
    assert tutorial["config"] == "tutorial" and engine["config"] == "torch"
    build = tutorial["build"]
    # Oracle: the splitter run by hand over the same texts, with the tokenizer as its length.
    tok = FakeTokenizer()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=200, chunk_overlap=0, length_function=lambda t: len(tok.tokenize(t))
    )
    chunks = [c for d in load_documents(long_source).documents for c in splitter.split_text(d.text)]
    assert build["documents"] == engine["build"]["documents"] == 6
    assert build["chunks"] == len(chunks) > 6 and max(len(tok.tokenize(c)) for c in chunks) <= 200
    assert build["tokens"] == sum(len(tok.tokenize(c)) for c in chunks)
    assert (len(chunks), 32, True) in model.calls
    saved = faiss.read_index(str(tmp_path / "work" / "0-tutorial" / "tutorial-index" / "index.faiss"))
    assert saved.ntotal == len(chunks) and tutorial["index"]["store"]["vectors"] == len(chunks)
    assert tutorial["index"]["disk_mb"] > 0 and build["peak_rss_mb"] > 0
    assert not {"query", "incremental", "cold_start", "embed"} & set(tutorial)
    speedup = report["build_vs_tutorial"]
    assert speedup == {"tutorial": 1.0, "torch": round(build["seconds"] / engine["build"]["seconds"], 2)}
    assert report["ratios"]["build s"]["torch"] == round(engine["build"]["seconds"] / build["seconds"], 3)
    assert "query p50 ms" not in report["ratios"]  # the first configuration has no query figures
    table = format_table(report)
    row = next(line for line in table.splitlines() if line.startswith("build vs tutorial"))
    assert row.split()[-2:] == ["1.00x", f"{speedup['torch']:.2f}x"]
    assert "6 documents" in table and "no answer path" in table
    assert json.loads(json.dumps(report))["build_vs_tutorial"] == speedup


def test_compare_names_accept_the_tutorial_and_refuse_unknown_backends():
    from rag.config import Settings
    from rag.errors import ConfigError

    configs = parse_configs(["tutorial", " onnx-int8", ""], Settings())
    assert [c.name for c in configs] == ["tutorial", "onnx-int8"] and configs[0].is_tutorial
    with pytest.raises(ConfigError, match="--compare bogus"):
        parse_configs(["bogus"], Settings())


@pytest.mark.model
def test_tutorial_with_the_real_model(small_source, tmp_path):
    report = run_bench([BenchConfig.parse("tutorial")], small_source, limit=3, work=tmp_path / "work")
    (tutorial,) = report["configs"]
    assert tutorial["build"]["documents"] == 3 and tutorial["build"]["chunks"] == 3  # short stories: one chunk each
    assert tutorial["index"]["store"]["dimension"] == 384 and tutorial["torch_threads"] >= 1


# -- synthetic collections at scale -----------------------------------------------------------------------------


def _records(folder):
    return [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_synthetic_collection_is_deterministic_and_has_no_two_equal_articles(small_source, tmp_path):
    from rag.ingest.files import load_documents

    first = write_synthetic_collection(small_source, tmp_path / "a", 25, per_file=10)
    write_synthetic_collection(small_source, tmp_path / "b", 25, per_file=10)
    assert (first.articles, first.files, first.source_articles, first.copies, first.marked) == (25, 3, 10, 3, 0)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["articles-0000.jsonl", "articles-0001.jsonl", "articles-0002.jsonl"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    recs = _records(tmp_path / "a")
    original = small_source.read_text().splitlines()
    assert (tmp_path / "a" / files[0]).read_text().splitlines() == original  # copy 0 is the source, byte for byte
    assert len(recs) == 25 and len({r["text"] for r in recs}) == 25 and len({r["id"] for r in recs}) == 25
    for r in recs[10:]:
        source_rec = json.loads(original[int(r["id"].split("~")[0][1:])])
        copy = int(r["id"].split("~")[1])
        assert r["title"] == f"{source_rec['title']} (copy {copy})"
        assert sorted(r["text"].split()) == sorted(source_rec["text"].split()), "the same words in another order"
        assert r["text"] != source_rec["text"]
    docs = load_documents(tmp_path / "a").documents
    assert len(docs) == 25 and len({d.content_hash for d in docs}) == 25

    fewer = write_synthetic_collection(small_source, tmp_path / "c", 4)
    assert (fewer.articles, fewer.copies) == (4, 1)
    assert _records(tmp_path / "c") == [json.loads(line) for line in original[:4]]


def test_synthetic_copies_that_cannot_be_reordered_still_differ(tmp_path):
    src = tmp_path / "one.jsonl"
    src.write_text(json.dumps({"text": "Short one."}) + "\n")
    made = write_synthetic_collection(src, tmp_path / "out", 4)
    texts = [r["text"] for r in _records(tmp_path / "out")]
    assert made.marked == 3 and len(set(texts)) == 4 and texts[0] == "Short one."


def test_synthetic_collection_refuses_a_source_without_articles(tmp_path):
    from rag.errors import SourceError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n{}\n")
    with pytest.raises(SourceError, match="no usable article"):
        write_synthetic_collection(empty, tmp_path / "out", 3)
    with pytest.raises(SourceError, match="--scale-source"):
        write_synthetic_collection(tmp_path, tmp_path / "out", 3)


def test_scale_reports_each_size_and_the_growth_between_them(small_source, tmp_path, fake_embedder):
    report = run_bench(
        [], scale=[6, 3], scale_source=small_source, scale_rounds=1, embedder=fake_embedder, work=tmp_path / "work"
    )
    scale = report["scale"]
    small, large = scale["runs"]
    assert (small["articles"], large["articles"]) == (3, 6) and (small["documents"], large["documents"]) == (3, 6)
    assert large["chunks"] > small["chunks"] > 0 and large["sentences"] > small["sentences"]
    assert large["articles_per_s"] == pytest.approx(6 / large["build_s"], rel=0.01)
    assert large["kb_per_chunk"] == round(large["disk_mb"] * 1024 / large["chunks"], 2)
    assert large["query"]["n"] == len(QUESTIONS) and large["fresh_process"] is False
    # The kernel's high-water mark lags the live counters by a few pages: the sampler's peak can pass it slightly.
    assert large["max_rss_mb"] > 0.95 * large["peak_rss_mb"] > 0
    (growth,) = scale["growth"]
    assert (growth["from"], growth["to"], growth["articles_x"]) == (3, 6, 2.0)
    assert growth["build_s_per_1k_added"] == round((large["build_s"] - small["build_s"]) * 1000 / 3, 3)
    assert (tmp_path / "work" / "scale" / "scale-6" / "index").is_dir(), "kept: a work folder was given"
    table = format_table(report)
    assert "scale: " in table and "3 -> 6 articles (2.0x)" in table and "KB per chunk" in table
    assert json.loads(json.dumps(report))["scale"]["runs"][1]["articles"] == 6


def test_scale_removes_each_size_once_measured(small_source, tmp_path, fake_embedder):
    out = bench_scale([2], small_source, work=tmp_path / "w", rounds=1, questions=QUESTIONS[:2], embedder=fake_embedder)
    assert out["runs"][0]["documents"] == 2 and out["growth"] == []
    assert not (tmp_path / "w" / "scale-2").exists()


def test_scale_build_failing_in_its_process_says_why(small_source, tmp_path):
    from rag.config import Settings
    from rag.errors import RagError

    lines = []
    settings = Settings(model=str(tmp_path / "no-such-model"))  # refused before any model code is imported
    with pytest.raises(RagError, match="failed in its own process") as err:
        _scale_subprocess(small_source, tmp_path / "index", settings, 1, QUESTIONS[:1], lines.append)
    assert "no-such-model" in str(err.value) and lines, "the child's stderr reached the log"


def test_scale_command_line():
    args = build_parser().parse_args(
        ["bench", "--scale", "2225,20000,100000", "--scale-rounds", "1", "--scale-source", "a.jsonl", "--work", "w"]
    )
    assert args.scale == [2225, 20000, 100000] and args.scale_rounds == 1 and args.scale_source == "a.jsonl"
    assert build_parser().parse_args(["bench"]).scale is None
    for bad in ("0,10", "ten", ","):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["bench", "--scale", bad])


def test_command_line_passes_scale_and_tutorial_through(monkeypatch, capsys):
    import rag.evaluation.bench.commands as bench

    seen = {}

    def fake_run_bench(configs, source=None, **kw):
        seen.clear()
        seen.update(configs=configs, **kw)
        return {"machine": {}, "configs": []}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--scale", "30,10", "--backend", "torch", "--quiet"]) == 0
    assert seen["configs"] == [], "--backend beside --scale sets the scale builds' backend, it adds no corpus run"
    assert seen["scale"] == [30, 10] and seen["scale_rounds"] == 2 and seen["settings"].backend == "torch"
    assert main(["bench", "--compare", "tutorial,onnx-int8", "--quiet"]) == 0
    assert [c.name for c in seen["configs"]] == ["tutorial", "onnx-int8"] and not seen["scale"]


@pytest.mark.model
@pytest.mark.slow
def test_scale_builds_in_a_fresh_process_with_the_real_model(small_source, tmp_path):
    out = bench_scale([2], small_source, rounds=1, questions=QUESTIONS[:2])
    (run,) = out["runs"]
    assert run["fresh_process"] is True and run["documents"] == 2 and run["query"]["n"] == 2
    assert run["max_rss_mb"] > 0.95 * run["peak_rss_mb"] and run["peak_rss_mb"] >= run["rss_before_build_mb"] > 0
