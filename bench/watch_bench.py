"""Watched questions, measured: the time a build spends asking 100 saved questions against an update of 50
articles on the full BBC index, against the time of the build itself; and what the screens keep.

Setup (fixed seed): a copy of the full BBC index (.rag-cache/bbc-index, built once by the tests or by this script);
100 questions of bench/news_calibration.jsonl saved on it; then, each round, 50 articles change (a new first
sentence), of which `--gold` (default none) are the articles some saved questions were written from, the rest drawn at random. A
round is the build (`build_index`, incremental) followed by the step every build command runs
(`rag.watch.asking.after_build`), in one process as `rag rebuild-index` does it.

`--naive` also asks, in one round, every saved question against all 50 articles with the reader (what the step
would cost without its screens) and compares the answers. `--recall` replays the screens on every answered
question of the calibration set, its article among 49 others, and counts the answers they would lose.

Usage:
    .venv/bin/python bench/watch_bench.py [--rounds 3] [--naive] [--recall] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BBC = ROOT.parent / "shared" / "data" / "bbc_news" / "articles.jsonl"
CACHE = ROOT / ".rag-cache" / "bbc-index"
QUESTIONS = ROOT / "bench" / "news_calibration.jsonl"
sys.path.insert(0, str(ROOT))

SAVED = 100
CHANGED = 50
GOLD = 0
"""Changed articles per round chosen among those some saved questions were written from (0: all drawn at random,
so about 50 / 2,225 of the questions' articles change, as in an update unrelated to what is watched)."""
SEED = 34


def _records() -> list[dict]:
    return [json.loads(line) for line in open(BBC, encoding="utf-8") if line.strip()]


def _questions() -> list[dict]:
    return [json.loads(line) for line in open(QUESTIONS, encoding="utf-8") if line.strip()]


def _write_update(records: list[dict], changed: set[str], round_no: int, path: Path) -> None:
    """The collection with the `changed` articles given a new first sentence (so their hash changes); `records`
    keeps the change, so the next round changes only its own articles."""
    with open(path, "w", encoding="utf-8") as f:
        for i, r in enumerate(records):
            if r["id"] in changed:
                r = records[i] = {**r, "text": f"Update {round_no}: the story has moved on. {r['text']}"}
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def rounds(n_rounds: int, naive: bool, n_gold: int = GOLD, cli: bool = False) -> dict:
    from rag import build_index
    from rag.config import Settings
    from rag.watch.asking import after_build
    from rag.watch.store import WatchStore

    records = _records()
    ids = [r["id"] for r in records]
    rng = random.Random(SEED)
    saved = rng.sample(_questions(), SAVED)
    golds = [q["doc_id"] for q in saved if q.get("doc_id")]
    build_index(BBC, CACHE)  # found up to date when the tests or an earlier run built it
    out: dict = {"saved": SAVED, "changed": CHANGED, "gold": n_gold, "cli": cli, "rounds": []}
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        work = Path(tmp)
        index = work / "index"
        shutil.copytree(CACHE, index)
        settings = Settings.load({"index_dir": str(index)})
        store = WatchStore(index)
        from rag.index import indexdir

        version = indexdir.current_version(index)
        baseline = (version.name, indexdir.read_manifest(version)["documents"])
        for q in saved:
            store.add(q["question"], max_chars=settings.max_question_chars, baseline=baseline)
        for k in range(-1, n_rounds):
            gold = set(rng.sample(golds, n_gold))
            changed = gold | set(rng.sample([i for i in ids if i not in gold], CHANGED - n_gold))
            touched = sum(1 for q in saved if q.get("doc_id") in changed)
            source = work / f"articles-{k}.jsonl"
            _write_update(records, changed, k, source)
            if cli:
                stats, report, built, built_cpu, step_cpu = _command(source, index)
            else:
                t0, c0 = time.perf_counter(), time.process_time()
                stats = build_index(source, index, settings)
                built, built_cpu = time.perf_counter() - t0, time.process_time() - c0
                if naive and k == n_rounds - 1:
                    out["naive"] = _naive(index, settings, store, sorted(changed))
                c0 = time.process_time()
                report = after_build(index, settings)
                step_cpu = time.process_time() - c0
            assert report.error is None, report.error
            if k < 0:
                # The first step after the questions were saved also embeds them (once; kept in the store).
                out["first_step_s"] = round(report.seconds, 3)
                print(
                    f"warm-up round: build {built:.2f} s, saved questions {report.seconds:.3f} s (their vectors "
                    f"made and kept)",
                    flush=True,
                )
                continue
            row = {
                "touched": touched,
                "build_s": round(built, 3),
                "updated": stats.updated,
                "step_s": round(report.seconds, 3),
                "share": round(report.seconds / built, 4),
                "build_cpu_s": round(built_cpu, 3),
                "step_cpu_s": round(step_cpu, 3),
                "cpu_share": round(step_cpu / built_cpu, 4),
                "screened_pairs": report.screened,
                "asked": report.asked,
                "answers": len(report.answers),
                "answered": sorted((a.question_id, a.doc_id) for a in report.answers),
            }
            out["rounds"].append(row)
            print(
                f"round {k + 1}: {touched} saved questions' articles among the 50; build {built:.2f} s "
                f"({stats.updated} updated), saved questions {report.seconds:.3f} s "
                f"({100 * report.seconds / built:.1f}%; CPU {100 * step_cpu / built_cpu:.1f}%): {report.screened} "
                f"article-question pairs past the "
                f"screens, {report.asked} questions asked, {len(report.answers)} answers",
                flush=True,
            )
    shares = [r["share"] for r in out["rounds"]]
    out["median_build_s"] = statistics.median(r["build_s"] for r in out["rounds"])
    out["median_step_s"] = statistics.median(r["step_s"] for r in out["rounds"])
    out["median_share"] = statistics.median(shares)
    out["median_cpu_share"] = statistics.median(r["cpu_share"] for r in out["rounds"])
    print(
        f"median of {len(shares)} rounds: build {out['median_build_s']:.2f} s, saved questions {out['median_step_s']:.3f} s "
        f"({100 * out['median_share']:.1f}% of the build; of its CPU time {100 * out['median_cpu_share']:.1f}%)"
    )
    if "naive" in out:
        nv = out["naive"]
        last = {tuple(p) for p in out["rounds"][-1]["answered"]}
        nv["also_found_by_the_step"] = sum(1 for p in nv["answered"] if tuple(p) in last)
        print(
            f"without the screens: {nv['seconds']:.2f} s ({100 * nv['seconds'] / out['rounds'][-1]['build_s']:.0f}% "
            f"of that build), {len(nv['answered'])} answers, {nv['also_found_by_the_step']} of them also "
            "recorded by the step"
        )
    return out


def _command(source: Path, index: Path):
    """`rag rebuild-index --json` in a process of its own, as a person runs it: the build's and the step's seconds
    as it reports them (its CPU times are not known from outside: the wall times stand for them)."""
    import os
    import subprocess
    from types import SimpleNamespace

    from rag.watch.store import WatchedAnswer

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "rag"),
            "rebuild-index",
            "--source",
            str(source),
            "--index",
            str(index),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(done.stdout)
    w = out["watched"]
    report = SimpleNamespace(
        error=w["error"],
        seconds=w["seconds"],
        screened=w["screened"],
        asked=w["asked"],
        answers=[WatchedAnswer.from_dict(a) for a in w["answers"]],
    )
    stats = SimpleNamespace(updated=out["updated"])
    return stats, report, out["seconds"], out["seconds"], w["seconds"]


def _naive(index: Path, settings, store, changed: list[str]) -> dict:
    """Every saved question against all changed articles, with the reader, as the step would without screens."""
    from rag import open_index

    idx = open_index(index, settings=settings, verify=False)
    answered = []
    t0 = time.perf_counter()
    for q in store.questions():
        a = idx.query(q.question, doc_ids=changed)
        if not a.abstained and a.citations:
            answered.append((q.id, a.citations[0].doc_id))
    seconds = time.perf_counter() - t0
    idx.close()
    return {"seconds": round(seconds, 3), "answered": sorted(answered)}


def recall() -> dict:
    """The screens replayed on every calibration question answered from its article among 49 others."""
    from rag import open_index
    from rag.index.lexical import content_terms
    from rag.watch.asking import GATE_COSINE, GATE_COVERAGE, LINEAR_FLOOR

    idx = open_index(CACHE, verify=False)
    ids = [d.id for d in idx.documents()]
    rng = random.Random(SEED)
    kept = lost = 0
    losses = []
    t0 = time.perf_counter()
    for q in _questions():
        docs = rng.sample(ids, CHANGED)
        if q.get("doc_id") and q["doc_id"] not in docs:
            docs[0] = q["doc_id"]
        full = idx.query(q["question"], doc_ids=docs)
        if full.abstained:
            continue
        # The screens of rag.watch.asking, in order: cosine, idf share, linear confidence; then the reader.
        rows = idx.catalog.sentences_of(docs)
        vec = idx.embedder.embed_query(q["question"])
        best: dict[str, float] = {}
        for r, c in zip(rows, idx.sentence_matrix[[r.row for r in rows]] @ vec):
            best[r.doc_id] = max(best.get(r.doc_id, -1.0), float(c))
        weights = {t: idx.lexical.idf_of(t) for t in content_terms(q["question"])}
        total = sum(weights.values()) or 1.0
        close = [
            d
            for d in docs
            if best.get(d, -1.0) >= GATE_COSINE
            and sum(w for t, w in weights.items() if t in content_terms(idx.document(d).text)) / total >= GATE_COVERAGE
        ]
        screened = idx.query(q["question"], doc_ids=close, read=LINEAR_FLOOR) if close else None
        if screened is not None and not screened.abstained:
            kept += 1
        else:
            lost += 1
            losses.append(
                {
                    "id": q["id"],
                    "kind": q["kind"],
                    "split": q["split"],
                    "confidence": round(full.confidence, 3),
                    "stage": "cosine/words" if not close else "linear or reader",
                }
            )
    print(f"recall of the screens: {kept} of {kept + lost} answered questions kept ({time.perf_counter() - t0:.0f} s)")
    for item in losses:
        print(f"  lost {item}")
    return {"kept": kept, "lost": lost, "losses": losses}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--gold",
        type=int,
        default=GOLD,
        help="changed articles chosen among the saved questions' own (default 0: all at random)",
    )
    p.add_argument("--cli", action="store_true", help="each round as `rag rebuild-index` in a process of its own")
    p.add_argument("--naive", action="store_true", help="also time the step without its screens (one round)")
    p.add_argument("--recall", action="store_true", help="replay the screens on the calibration set's answers")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if not BBC.exists():
        print(f"{BBC} is missing (the shared data set beside the repo)", file=sys.stderr)
        return 1
    out = {"rounds": rounds(args.rounds, args.naive, args.gold, args.cli)} if args.rounds else {}
    if args.recall:
        out["recall"] = recall()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
