"""The report: ratios to the first configuration, the text tables `rag bench` prints, and the machine it ran on."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rag.evaluation.bench.configs import TUTORIAL, TUTORIAL_CHUNK_TOKENS

__all__ = ["ROWS", "SCALE_ROWS", "add_ratios", "format_scale", "format_table", "get_path", "machine"]


# (row label, path into a configuration's result, higher is better?)
ROWS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("embed tokens/s", ("embed", "tokens_per_s"), True),
    ("embed chunks/s", ("embed", "chunks_per_s"), True),
    ("build s", ("build", "seconds"), False),
    ("build documents/s", ("build", "documents_per_s"), True),
    ("build chunks/s", ("build", "chunks_per_s"), True),
    ("build tokens/s", ("build", "tokens_per_s"), True),
    ("build peak RSS MiB", ("build", "peak_rss_mb"), False),
    ("query p50 ms", ("query", "p50_ms"), False),
    ("query p95 ms", ("query", "p95_ms"), False),
    ("query p99 ms", ("query", "p99_ms"), False),
    ("query p50 ms (new)", ("query", "first_pass", "p50_ms"), False),
    ("query p95 ms (new)", ("query", "first_pass", "p95_ms"), False),
    ("query-embed p50 ms", ("query", "embed_query", "p50_ms"), False),
    ("index on disk MiB", ("index", "disk_mb"), False),
    ("incremental s", ("incremental", "seconds"), False),
    ("cold start s", ("cold_start", "median_s"), False),
    ("model load s", ("model_load_s",), False),
)


def get_path(d: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def add_ratios(configs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each figure of each configuration divided by the first configuration's ({label: {config: ratio}})."""
    ratios: dict[str, dict[str, float]] = {}
    if not configs:
        return ratios
    base = configs[0]
    for label, path, _ in ROWS:
        b = get_path(base, path)
        if not isinstance(b, (int, float)) or b == 0:
            continue
        ratios[label] = {
            c["config"]: round(v / b, 3) for c in configs if isinstance(v := get_path(c, path), (int, float))
        }
    return ratios


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table (ratios to the first configuration in brackets)."""
    lines: list[str] = []
    env = report.get("machine", {})
    lines.append(
        f"machine: {env.get('cpus')} CPUs, {env.get('cpu_model', '?')}, python {env.get('python')}, "
        f"load average {env.get('loadavg_start')} -> {env.get('loadavg_end')}"
    )
    configs = report.get("configs", [])
    if configs:
        src = report.get("source", {})
        # The tutorial cuts its own chunks and has no sentences: the figures come from an engine build if any.
        ref = next((c["build"] for c in configs if c.get("backend") != TUTORIAL), configs[0]["build"])
        lines.append(
            f"source: {src.get('path')} ({ref['documents']} documents, "
            f"{ref['chunks']} chunks, {ref.get('sentences', '-')} sentences)"
        )
        names = [c["config"] for c in configs]
        width = max(14, *(len(n) + 2 for n in names))
        lines.append(f"{'':<22}" + "".join(f"{n:>{width + 9}}" for n in names))
        ratios = report.get("ratios", {})
        for label, path, _ in ROWS:
            vals = [get_path(c, path) for c in configs]
            if all(v is None for v in vals):
                continue
            cells = []
            for c, v in zip(configs, vals):
                r = ratios.get(label, {}).get(c["config"])
                cell = "-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")
                cells.append(
                    f"{cell:>{width}}" + (f" ({r:.2f}x)" if r is not None and c is not configs[0] else " " * 9)
                )
            lines.append(f"{label:<22}" + "".join(cells))
        vs = report.get("build_vs_tutorial", {})
        if vs:
            cells = [f"{vs[c['config']]:.2f}x" if c["config"] in vs else "-" for c in configs]
            lines.append(f"{'build vs tutorial':<22}" + "".join(f"{cell:>{width}}" + " " * 9 for cell in cells))
        for c in configs:
            if c.get("backend") == TUTORIAL:
                lines.append(
                    f"{c['config']}: {c['build']['chunks']:,} chunks of <= {TUTORIAL_CHUNK_TOKENS} tokens "
                    "(RecursiveCharacterTextSplitter), SentenceTransformer on PyTorch, faiss.IndexFlatIP; "
                    "build figures only (no answer path); build vs tutorial = tutorial build s / build s"
                )
            inc = c.get("incremental")
            if inc:
                lines.append(
                    f"{c['config']}: incremental rebuild after changing {inc['changed']}: {inc['seconds']} s, "
                    f"{inc.get('texts_embedded', '?')} texts embedded, {inc['updated']} updated"
                )
    for backend, shared in report.get("shared_embeddings", {}).items():
        lines.append(
            f"{backend}: articles embedded once beforehand ({shared['texts']:,} texts in {shared['seconds']} s, "
            "not timed); build and incremental times leave embedding out"
        )
    syn = report.get("synthetic")
    if syn:
        lay = syn["layout"]
        lines.append(
            f"synthetic: {syn['n']:,} x {syn['dimension']} vectors, {lay.get('factory')} (nprobe {lay.get('nprobe', '-')}): "
            f"recall@{syn['k']} {syn['recall_at_k']:.4f}, query p50 {syn['query']['p50_ms']:.2f} ms "
            f"p95 {syn['query']['p95_ms']:.2f} ms, file {syn['file_mb']} MiB, in memory +{syn['rss_loaded_in_memory_mb']} MiB, "
            f"mapped +{syn['mmap']['rss_after_open_mb']} MiB (+{syn['mmap']['rss_after_queries_mb']} MiB after queries), "
            f"build {syn['build_s']} s"
        )
    if report.get("scale"):
        lines.extend(format_scale(report["scale"]))
    return "\n".join(lines)


# (row label, key path into one size's result)
SCALE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("build s", ("build_s",)),
    ("articles/s", ("articles_per_s",)),
    ("build s per 1k articles", ("build_s_per_1k_articles",)),
    ("chunks", ("chunks",)),
    ("sentences", ("sentences",)),
    ("build peak RSS MiB", ("peak_rss_mb",)),
    ("process peak RSS MiB", ("max_rss_mb",)),
    ("index on disk MiB", ("disk_mb",)),
    ("KB per chunk", ("kb_per_chunk",)),
    ("query p50 ms", ("query", "p50_ms")),
    ("query p95 ms", ("query", "p95_ms")),
    ("answered fraction", ("query", "answered_fraction")),
)


def format_scale(scale: dict[str, Any]) -> list[str]:
    """The `bench_scale` result as table lines, one column per size, then the growth from each size to the next."""
    runs = scale.get("runs", [])
    if not runs:
        return []
    where = "each in a fresh process" if all(r.get("fresh_process") for r in runs) else "in this process"
    lines = [
        f"scale: {scale['source']} repeated, {runs[0].get('backend')} backend, built {where}; "
        f"query latency over {scale['rounds']} x {scale['questions']} questions"
    ]
    width = max(12, *(len(f"{r['articles']:,}") + 2 for r in runs))
    lines.append(f"{'articles':<24}" + "".join(f"{r['articles']:>{width},}" for r in runs))
    for label, path in SCALE_ROWS:
        vals = [get_path(r, path) for r in runs]
        cells = ["-" if v is None else (f"{v:,.2f}" if isinstance(v, float) else f"{v:,}") for v in vals]
        lines.append(f"{label:<24}" + "".join(f"{c:>{width}}" for c in cells))
    for g in scale.get("growth", []):
        lines.append(
            f"{g['from']:,} -> {g['to']:,} articles ({g['articles_x']}x): build {g['build_s_x']}x "
            f"({g['build_s_per_1k_added']:+,} s per 1,000 added), process peak RSS {g['max_rss_mb_added']:+,} MiB "
            f"({g['max_rss_mb_per_1k_added']:+,} MiB per 1,000), disk {g['disk_mb_per_1k_added']:+,} MiB per 1,000, "
            f"query p50 {g['query_p50_x']}x, p95 {g['query_p95_x']}x"
        )
    return lines


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["loadavg_start"] = round(os.getloadavg()[0], 2)
        with open("/proc/meminfo", encoding="ascii") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import faiss
        import numpy

        info["faiss"] = faiss.__version__
        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    return info
