"""Readers keep answering, completely and with valid citations, while rebuilds swap the index underneath them."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from rag import build_index, open_index
from rag.index.indexdir import current_version

from conftest import SEED_QUESTION, SEEDS
from spans import assert_spans

READERS = 4
REBUILDS = 6
QUESTIONS = (
    SEED_QUESTION,
    "who suspended military aid?",
    "when does the ferry leave?",
    "what did the mayor say about the repairs?",
    "intelligence sharing with Ukraine",
)

EXTRA = [
    "(Jane Roe, Example Wire)\nThe harbour authority reopened the northern pier on Tuesday. The ferry leaves at "
    "nine and returns at noon. The mayor said the repairs cost less than expected.\n",
    "# Library hours\n\nThe city library opens at eight on weekdays. On Sundays it stays closed. A new reading "
    "room opened in May.\n",
]


def _source(root: Path, variant: int) -> Path:
    """Seed articles plus `variant` extra articles (each variant gives a different index)."""
    folder = root / f"source-{variant}"
    if not folder.exists():
        shutil.copytree(SEEDS, folder)
        for i, text in enumerate(EXTRA[:variant]):
            (folder / f"extra-{i}.md").write_text(text, encoding="utf-8")
    return folder


def _check_answer(idx, answer) -> None:
    """The answer is whole and every span is valid in the version that produced it."""
    assert answer.index_version == idx.version
    assert answer.text and isinstance(answer.abstained, bool) and 0.0 <= answer.confidence <= 1.0
    assert answer.passages
    if not answer.abstained:
        assert answer.citations
    assert_spans(idx, answer)


def test_readers_during_rebuilds(tmp_path, fake_embedder):
    index = tmp_path / "index"
    first = build_index(_source(tmp_path, 0), index, embedder=fake_embedder).version
    published = {first}
    stop = threading.Event()
    errors: list[str] = []
    answered: list[tuple[int, str]] = []  # (reader, version)
    lock = threading.Lock()

    def reader(n: int) -> None:
        # Readers 0-1 follow new versions as the UI does; 2-3 keep the index they opened first, whose folder
        # is removed by the next build while they still read from it.
        idx = open_index(index, embedder=fake_embedder)
        i = 0
        while not stop.is_set() or i < 5:
            try:
                if n < 2 and idx.is_stale():
                    idx = open_index(index, embedder=fake_embedder)
                answer = idx.query(QUESTIONS[(i + n) % len(QUESTIONS)])
                _check_answer(idx, answer)
                with lock:
                    answered.append((n, answer.index_version))
            except Exception as exc:  # collected: any error at all fails the test
                with lock:
                    errors.append(f"reader {n}: {type(exc).__name__}: {exc}")
            i += 1

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    for t in threads:
        t.start()
    try:
        for r in range(REBUILDS):
            stats = build_index(_source(tmp_path, 1 + r % 2), index, embedder=fake_embedder, full=True)
            published.add(stats.version)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    versions = {v for _, v in answered}
    assert versions <= published
    per_reader = {n: {v for m, v in answered if m == n} for n in range(READERS)}
    assert all(per_reader[n] for n in range(READERS))
    assert len(per_reader[0] | per_reader[1]) >= 2, "followers never saw a swap: the test did not exercise one"
    assert per_reader[2] == per_reader[3] == {first}
    assert current_version(index).name == stats.version
    # Only the live version remains on disk; readers 2 and 3 answered from a removed folder.
    assert sorted(p.name for p in index.iterdir() if p.name.startswith("v-")) == [stats.version]


def test_an_open_index_serves_new_threads_after_its_folder_is_removed(tmp_path, fake_embedder):
    index = tmp_path / "index"
    build_index(_source(tmp_path, 0), index, embedder=fake_embedder)
    idx = open_index(index, embedder=fake_embedder)
    old = idx.version_dir
    build_index(_source(tmp_path, 1), index, embedder=fake_embedder)
    assert not old.exists()
    results: list = []

    def ask() -> None:
        try:
            answer = idx.query(SEED_QUESTION)
            _check_answer(idx, answer)
            results.append(answer.index_version)
        except Exception as exc:
            results.append(exc)

    t = threading.Thread(target=ask)  # a thread that never touched this index before
    t.start()
    t.join(timeout=60)
    assert results == [old.name]


def test_open_retries_when_a_build_removes_the_version_being_opened(tmp_path, fake_embedder, monkeypatch):
    """open_index() read CURRENT, then a build published and removed that version before the files were read."""
    import rag.index.indexdir as indexdir

    index = tmp_path / "index"
    build_index(_source(tmp_path, 0), index, embedder=fake_embedder)
    real = indexdir.read_manifest
    raced = []

    def racing_read_manifest(version_dir):
        if not raced:
            raced.append(Path(version_dir).name)
            build_index(_source(tmp_path, 1), index, embedder=fake_embedder)
        return real(version_dir)

    monkeypatch.setattr(indexdir, "read_manifest", racing_read_manifest)
    idx = open_index(index, embedder=fake_embedder)
    assert raced and idx.version != raced[0]
    assert idx.version == current_version(index).name
    _check_answer(idx, idx.query(SEED_QUESTION))


def test_open_retries_when_the_version_vanishes_while_its_checksums_are_read(tmp_path, fake_embedder, monkeypatch):
    """The manifest was read, then a build published and removed the version between two file checks."""
    import rag.index.indexdir as indexdir

    index = tmp_path / "index"
    build_index(_source(tmp_path, 0), index, embedder=fake_embedder)
    first = current_version(index)
    real = indexdir.checksums
    raced = []

    def racing_checksums(folder, names):
        if not raced and Path(folder) == first:
            raced.append(names)
            build_index(_source(tmp_path, 1), index, embedder=fake_embedder)  # removes `first`
        return real(folder, names)

    monkeypatch.setattr(indexdir, "checksums", racing_checksums)
    idx = open_index(index, embedder=fake_embedder)
    assert raced and not first.exists()
    assert idx.version == current_version(index).name != first.name
    _check_answer(idx, idx.query(SEED_QUESTION))


def test_a_vanished_file_is_reported_not_raised(tmp_path, fake_embedder, monkeypatch):
    import rag.index.indexdir as indexdir

    index = tmp_path / "index"
    build_index(_source(tmp_path, 0), index, embedder=fake_embedder)
    version = current_version(index)
    manifest = indexdir.read_manifest(version)

    def gone(folder, names):
        raise FileNotFoundError(2, "No such file or directory", str(Path(folder) / names[0]))

    monkeypatch.setattr(indexdir, "checksums", gone)
    problems = indexdir.verify_files(version, manifest, deep=True)
    assert problems and all("cannot be read" in p for p in problems)
