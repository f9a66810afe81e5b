"""A build killed with SIGKILL at any stage leaves the previous index usable, and the next build cleans up.

The build runs the real command line (`rag rebuild-index`) in a subprocess. RAG_PAUSE_AT holds it at a named
stage (rag.index.indexdir.pause_point); the test waits for the "paused at" line, then kills it there.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import build_index, open_index
from rag.cli.commands import main as cli_main
from rag.index.indexdir import PAUSE_ENV, PAUSE_STAGES, current_version

from conftest import ROOT, SEED_QUESTION, SEEDS, WALTZ
from spans import assert_spans

TESTS = Path(__file__).resolve().parents[1]

# The command line, with the model swapped for the fake embedder (the build path is otherwise the real one).
_FAKE_CLI = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from fakes import FakeEmbedder
import rag.index.build
import rag.index.version
rag.index.build.make_embedder = rag.index.version.make_embedder = lambda model, backend="torch", device="cpu": FakeEmbedder()
from rag.cli.commands import main
sys.exit(main(sys.argv[1:]))
"""

EXTRA = """(Jane Roe, Example Wire)
The harbour authority reopened the northern pier on Tuesday after three weeks of repairs. Ferries will run
on the winter timetable until March. The mayor said the repairs cost less than expected.
"""


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    """(A, B): the seed articles, and the seeds plus one more article, so that a build from B changes the index."""
    a = tmp_path / "source-a"
    shutil.copytree(SEEDS, a)
    b = tmp_path / "source-b"
    shutil.copytree(SEEDS, b)
    (b / "harbour.txt").write_text(EXTRA, encoding="utf-8")
    return a, b


class PausedBuild:
    """A `rag rebuild-index` subprocess held at a stage, ready to be killed."""

    def __init__(self, args: list[str], stage: str, real_model: bool = False, timeout: float = 240):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env[PAUSE_ENV] = stage
        cmd = [str(ROOT / ".venv" / "bin" / "rag")] if real_model else [sys.executable, "-c", _FAKE_CLI]
        self.proc = subprocess.Popen(
            cmd + args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise AssertionError(f"the build never reached stage {stage!r}; stderr: {self.seen}") from None
            if line is None:
                raise AssertionError(f"the build exited ({self.proc.wait()}) before stage {stage!r}: {self.seen}")
            self.seen.append(line)
            if line.startswith(f"paused at {stage}"):
                return

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=30)


def _assert_answers(index_dir: Path, embedder, expect_version: str) -> None:
    idx = open_index(index_dir, embedder=embedder)
    try:
        assert idx.version == expect_version
        answer = idx.query(SEED_QUESTION)
        assert answer.index_version == expect_version
        assert answer.citations, answer.text
        assert_spans(idx, answer)
    finally:
        idx.close()


def _check_index(index_dir: Path, capsys) -> tuple[int, str]:
    code = cli_main(["check-index", "--index", str(index_dir)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def fake_cli_embedder(monkeypatch, fake_embedder):
    """Make in-process CLI calls (check-index) use the fake embedder too."""
    import rag.index.build
    import rag.index.version

    monkeypatch.setattr(rag.index.build, "make_embedder", lambda model, backend="torch", device="cpu": fake_embedder)
    monkeypatch.setattr(rag.index.version, "make_embedder", lambda model, backend="torch", device="cpu": fake_embedder)
    return fake_embedder


@pytest.mark.parametrize("stage", PAUSE_STAGES)
def test_killed_build_leaves_a_working_index(stage, tmp_path, fake_cli_embedder, capsys):
    emb = fake_cli_embedder
    a, b = _sources(tmp_path)
    index = tmp_path / "index"
    before = build_index(a, index, embedder=emb).version
    _assert_answers(index, emb, before)

    build = PausedBuild(["rebuild-index", "--source", str(b), "--index", str(index), "--full", "--quiet"], stage)
    assert build.kill() == -signal.SIGKILL

    leftovers = sorted(p.name for p in index.iterdir() if p.name.startswith((".tmp-", "v-")))
    live = current_version(index)
    if stage == "published":
        # CURRENT was replaced before the kill: the new version is live, the old one is left behind.
        assert live is not None and live.name != before
        assert before in leftovers
        expect = live.name
    else:
        assert live is not None and live.name == before
        expect = before
        if stage in ("write", "swap"):
            assert len(leftovers) == 2, leftovers  # the killed build's work left on disk

    _assert_answers(index, emb, expect)
    code, out = _check_index(index, capsys)
    assert code == 0, out
    assert "match their checksums" in out

    # The next build takes the lock (the killed holder released it), removes the debris and publishes.
    after = build_index(b, index, embedder=emb, full=True)
    names = sorted(p.name for p in index.iterdir())
    assert names == sorted(["CURRENT", ".build.lock", after.version]), names
    _assert_answers(index, emb, after.version)
    assert after.documents == 2


def test_second_build_is_refused_while_one_runs(tmp_path, fake_cli_embedder, capsys):
    a, b = _sources(tmp_path)
    index = tmp_path / "index"
    before = build_index(a, index, embedder=fake_cli_embedder).version
    build = PausedBuild(["rebuild-index", "--source", str(b), "--index", str(index), "--full", "--quiet"], "embed")
    try:
        code = cli_main(["rebuild-index", "--source", str(b), "--index", str(index), "--quiet"])
        err = capsys.readouterr().err
        assert code == 7
        assert "a build is already running" in err
        from rag.errors import BuildLockedError

        with pytest.raises(BuildLockedError, match="a build is already running"):
            build_index(b, index, embedder=fake_cli_embedder)
    finally:
        build.kill()
    assert current_version(index).name == before  # the refused builds changed nothing


def test_pause_stages_are_all_reached_in_order(tmp_path, fake_embedder, monkeypatch):
    """Each pause point sits on the build path (a renamed or removed one would make the tests above vacuous)."""
    import rag.index.indexdir as indexdir

    a, _ = _sources(tmp_path)
    reached: list[str] = []
    monkeypatch.setattr(indexdir, "pause_point", reached.append)
    build_index(a, tmp_path / "index", embedder=fake_embedder)
    assert reached == list(PAUSE_STAGES)


@pytest.mark.model
@pytest.mark.slow
def test_real_command_killed_before_swap(seed_index_dir, copy_index, model_embedder):
    """The installed `rag rebuild-index` with the real model, killed just before the swap."""
    index = copy_index(seed_index_dir)
    before = current_version(index).name
    build = PausedBuild(
        ["rebuild-index", "--source", str(SEEDS), "--index", str(index), "--full", "--quiet"], "swap", real_model=True
    )
    build.kill()
    assert current_version(index).name == before
    idx = open_index(index, embedder=model_embedder)
    answer = idx.query(SEED_QUESTION)
    assert not answer.abstained and WALTZ in answer.citations[0].quote
    c = answer.citations[0]
    assert idx.document(c.doc_id).text[c.start : c.end] == c.quote
    idx.close()
    check = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "rag"), "check-index", "--index", str(index)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert check.returncode == 0, check.stderr
