"""A truncated, altered or missing index file is refused with a message to rebuild: no crash, no wrong answer.

Every damage is opened in a separate process, so that a reader crashing on a bad file (FAISS can segfault)
fails the test with the case that caused it instead of taking the test run down.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag import build_index, open_index
from rag.errors import IndexCorruptError
from rag.index.indexdir import MANIFEST, current_version, read_manifest

from conftest import ROOT, SEED_QUESTION, SEEDS

TESTS = Path(__file__).resolve().parents[1]
FIXED_DAMAGES = ("truncate-half", "truncate-empty", "flip-first", "flip-middle", "flip-last", "append", "delete")
RANDOM_CASES = 120

# Runs in a child process: for each case, copy the pristine index, damage it, then open it, ask the seed
# question and run `rag check-index`. One JSON line per case; "start" first, so a crash names its case.
_CHILD = r"""
import contextlib, io, json, shutil, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fakes import FakeEmbedder
import rag.index.build
import rag.index.version
from rag import open_index
from rag.cli.commands import main as cli_main
from rag.errors import RagError

emb = FakeEmbedder()
rag.index.build.make_embedder = rag.index.version.make_embedder = lambda model, backend="torch", device="cpu": emb
pristine, work, question = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
cases = json.loads(sys.stdin.read())

def damage(index, case):
    version = index / (index / "CURRENT").read_text().strip()
    path = index / "CURRENT" if case["file"] == "CURRENT" else version / case["file"]
    data = path.read_bytes()
    kind, at = case["kind"], case.get("at", 0)
    if kind == "delete":
        path.unlink()
        return
    if kind == "truncate-half":
        data = data[: len(data) // 2]
    elif kind == "truncate-empty":
        data = b""
    elif kind == "truncate-at":
        data = data[: at % max(1, len(data))]
    elif kind == "append":
        data = data + b"garbage!" * 2
    else:
        i = {"flip-first": 0, "flip-middle": len(data) // 2, "flip-last": len(data) - 1}.get(kind, at % len(data))
        data = data[:i] + bytes([data[i] ^ case.get("mask", 0xFF)]) + data[i + 1 :]
    path.write_bytes(data)

for n, case in enumerate(cases):
    print(json.dumps({"start": n}), flush=True)
    index = work / f"case-{n}"
    shutil.copytree(pristine, index)
    damage(index, case)
    out = {"case": n}
    try:
        idx = open_index(index, embedder=emb)
        out["opened"] = idx.query(question).to_dict()
        idx.close()
    except RagError as exc:
        out["refused"] = f"{type(exc).__name__}: {exc}"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        out["check_code"] = cli_main(["check-index", "--index", str(index)])
    out["check_err"] = err.getvalue()
    shutil.rmtree(index)
    print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """(index_dir, reference answer): a small index built with the fake embedder, never modified."""
    import sys as _sys

    _sys.path.insert(0, str(TESTS))
    from fakes import FakeEmbedder

    source = tmp_path_factory.mktemp("integrity-src")
    shutil.copytree(SEEDS, source / "seeds")
    (source / "seeds" / "extra.md").write_text(
        "# Ferry timetable\n\nThe ferry leaves at nine. It returns at noon on weekdays.\n", encoding="utf-8"
    )
    index = tmp_path_factory.mktemp("integrity") / "index"
    emb = FakeEmbedder()
    build_index(source / "seeds", index, embedder=emb)
    idx = open_index(index, embedder=emb)
    reference = idx.query(SEED_QUESTION).to_dict()
    idx.close()
    return index, reference, source / "seeds"


def _index_files(index: Path) -> list[str]:
    version = current_version(index)
    return sorted(read_manifest(version)["files"]) + [MANIFEST, "CURRENT"]


def _run_cases(pristine_dir: Path, cases: list[dict], tmp_path: Path) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(TESTS), str(pristine_dir), str(tmp_path), SEED_QUESTION],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [r for r in lines if "case" in r]
    if proc.returncode != 0 or len(results) != len(cases):
        started = [r["start"] for r in lines if "start" in r]
        last = cases[started[-1]] if started else None
        raise AssertionError(f"reader process died (exit {proc.returncode}) on case {last}: {proc.stderr[-2000:]}")
    return results


def _assert_safe(case: dict, result: dict, reference: dict) -> bool:
    """True when refused; an index that still opens must answer exactly as the undamaged one did."""
    if "refused" in result:
        assert "rebuild" in result["refused"], (case, result["refused"])
        assert result["check_code"] != 0, (case, result)
        assert "rebuild" in result["check_err"], (case, result["check_err"])
        return True
    assert result["opened"] == reference, f"silent wrong answer after {case}"
    return False


def test_every_file_damaged_every_way_is_refused(pristine, tmp_path):
    index, reference, _ = pristine
    files = _index_files(index)
    assert {"vectors.faiss", "meta.sqlite", "sentence_vectors.npy", MANIFEST, "CURRENT"} <= set(files)
    cases = [{"file": f, "kind": k} for f in files for k in FIXED_DAMAGES]
    results = _run_cases(index, cases, tmp_path)
    for case, result in zip(cases, results):
        # Each of these changes content the index depends on: all must be refused, not just survived.
        assert _assert_safe(case, result, reference), f"damaged index was accepted: {case}"


def test_random_damage_never_crashes_or_lies(pristine, tmp_path):
    index, reference, _ = pristine
    files = _index_files(index)
    rng = random.Random(20240601)
    cases = []
    for _ in range(RANDOM_CASES):
        f = rng.choice(files)
        if rng.random() < 0.7:
            cases.append({"file": f, "kind": "flip", "at": rng.randrange(1 << 30), "mask": rng.randrange(1, 256)})
        else:
            cases.append({"file": f, "kind": "truncate-at", "at": rng.randrange(1 << 30)})
    results = _run_cases(index, cases, tmp_path)
    refused = sum(_assert_safe(c, r, reference) for c, r in zip(cases, results))
    # A flipped byte may land where nothing reads it (e.g. the unused tail of a header); those must answer
    # exactly as before, and they are rare: nearly every damage is caught by a checksum.
    assert refused >= 0.95 * len(cases)


def test_edited_manifest_is_refused(pristine, copy_index, fake_embedder):
    """A manifest edited into other valid JSON (here: another chunk size) fails its own checksum."""
    index = copy_index(pristine[0])
    path = current_version(index) / MANIFEST
    data = json.loads(path.read_text())
    data["settings"]["chunk_size"] = 64
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    with pytest.raises(IndexCorruptError, match="rebuild"):
        open_index(index, embedder=fake_embedder)


@pytest.mark.parametrize("file", ["vectors.faiss", "meta.sqlite", "sentence_vectors.npy", MANIFEST, "CURRENT"])
def test_rebuild_repairs_a_damaged_index(file, pristine, copy_index, fake_embedder):
    index_src, reference, source = pristine
    index = copy_index(index_src)
    target = index / "CURRENT" if file == "CURRENT" else current_version(index) / file
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="rebuild"):
        open_index(index, embedder=fake_embedder)
    stats = build_index(source, index, embedder=fake_embedder)
    assert stats.added == stats.documents  # nothing reused from the damaged version
    idx = open_index(index, embedder=fake_embedder)
    answer = idx.query(SEED_QUESTION).to_dict()
    assert {k: v for k, v in answer.items() if k != "index_version"} == {
        k: v for k, v in reference.items() if k != "index_version"
    }
    idx.close()
