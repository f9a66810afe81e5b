"""Watched questions end to end: a local feed brings two articles, one answering a saved question and one not; the
answer is reported once, with its citation and URL, by the command that published it and by `rag questions answers
--json`; a rebuild of the same articles reports nothing new; a build killed with SIGKILL between its publish and the
recording loses nothing (the next build, or `rag questions answers`, records it once)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import build_index, open_index
from rag.cli.commands import main as cli_main
from rag.index.indexdir import PAUSE_ENV, current_version
from rag.watch.asking import PAUSE, ask_new_articles, pending
from rag.watch.store import WatchStore

from conftest import ROOT
from web_server import ARTICLES, WebServer, article_html, build_site, rss

TESTS = Path(__file__).resolve().parents[1]
QUESTION = "When did the harbour authority reopen the northern pier?"
SILENT = "What is the boiling point of mercury?"
STORM = "How fast were the winds of the storm that closed the coastal road?"
HARBOUR, LIBRARY, STORM_ARTICLE = ARTICLES


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def two_articles():
    """The tests' news site on 127.0.0.1 with a feed of two articles: the harbour (answers QUESTION) and the library."""
    with WebServer(lifetime_s=300) as server:
        build_site(server, [HARBOUR, LIBRARY])
        yield server


def _url(site, article) -> str:
    slug, _, _, section, _ = article
    return site.url(f"/news/{section}/{slug}.html")


@pytest.mark.model
@pytest.mark.slow
def test_a_feed_brings_an_answer_reported_once_with_its_citation_and_url(
    two_articles, seed_index_dir, copy_index, model_embedder, tmp_path, monkeypatch, capsys
):
    """The acceptance path with the real model, so the step's screens run as they do for a user."""
    site = two_articles
    monkeypatch.setenv("RAG_FETCH_DELAY_S", "0")
    monkeypatch.chdir(ROOT)  # the seed index was built from seeds/, found from here
    index = str(copy_index(seed_index_dir))
    flags = ["--index", index, "--allow-private-urls"]
    assert run(capsys, "sources", "add", site.url("/feed.xml"), *flags)[0] == 0
    assert run(capsys, "questions", "add", QUESTION, "--index", index)[0] == 0
    assert run(capsys, "questions", "add", SILENT, "--index", index)[0] == 0

    code, out, err = run(capsys, "sources", "update", *flags)
    assert code == 0, err
    harbour_url = _url(site, HARBOUR)
    new = out[out.index("New answers:") :]
    assert f"[1] {QUESTION} ->" in new and "Tuesday" in new
    assert harbour_url in new and "characters" in new  # the citation: the article's URL and the span
    assert SILENT not in new and _url(site, LIBRARY) not in new and new.count("[1] ") == 1

    code, out, _ = run(capsys, "questions", "answers", "--json", "--index", index)
    [a] = json.loads(out)
    assert (a["question_id"], a["doc_id"], a["url"]) == (1, harbour_url, harbour_url)
    cite = a["answer"]["citations"][0]
    doc = open_index(index, embedder=model_embedder).document(harbour_url)
    assert doc.text[cite["start"] : cite["end"]] == cite["quote"] and "reopened the northern pier" in cite["quote"]
    assert a["answer"]["confidence"] >= 0.21 and a["index_version"].startswith("v-")

    # The same articles again: the feed unchanged, then a full rebuild re-indexing everything.
    code, out, _ = run(capsys, "sources", "update", *flags)
    assert code == 0 and "New answers" not in out
    code, out, err = run(capsys, "rebuild-index", "--source", "seeds", "--full", "--quiet", "--index", index)
    assert code == 0 and "New answers" not in out, err
    # The harbour article changes: asked again, but an article answered once is not reported again.
    slug, title, date, section, body = HARBOUR
    site.set(
        f"/news/{section}/{slug}.html",
        article_html(title, body + " Repairs of the southern pier start in May", date, section),
    )
    site.set(
        "/feed.xml",
        rss(
            site.url(""),
            [
                (f"/news/{section}/{slug}.html", title, "2024-03-09T10:00:00Z", section),
                (f"/news/{LIBRARY[3]}/{LIBRARY[0]}.html", LIBRARY[1], LIBRARY[2], LIBRARY[3]),
            ],
        ),
        "application/rss+xml",
    )
    code, out, _ = run(capsys, "sources", "update", *flags)
    assert code == 0 and "1 changed" in out and "New answers" not in out
    code, out, _ = run(capsys, "questions", "answers", "--json", "--index", index)
    assert len(json.loads(out)) == 1


@pytest.fixture
def fake_index(fake_cli_index):
    return fake_cli_index


# The command line in a subprocess, with the tests' embedder (the step and the build are otherwise the real ones).
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


def _killed_at_the_step(args: list[str]) -> None:
    """Run `rag <args>` until the step has its answers but has not recorded them, and SIGKILL it there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({PAUSE_ENV: PAUSE, "RAG_FETCH_DELAY_S": "0"})
    proc = subprocess.Popen(
        [sys.executable, "-c", _FAKE_CLI, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=180)
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"never paused at the step: {seen}") from None
        if line is None:
            raise AssertionError(f"exited ({proc.wait()}) before the step: {seen}")
        seen.append(line)
        if line.startswith(f"paused at {PAUSE}"):
            break
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_a_build_killed_before_recording_loses_nothing(two_articles, fake_index, capsys):
    site = two_articles
    index = str(fake_index)
    flags = ["--index", index, "--allow-private-urls"]
    run(capsys, "sources", "add", site.url("/feed.xml"), *flags)
    run(capsys, "questions", "add", QUESTION, "--index", index)
    store = WatchStore(fake_index)
    before = current_version(fake_index).name

    # Killed after publishing, before recording: the version is live, its answer not yet recorded.
    _killed_at_the_step(["sources", "update", *flags])
    assert current_version(fake_index).name != before
    assert store.answers() == [] and pending(fake_index)
    # The next build (nothing new in it) asks what the killed one left, and reports it.
    code, out, err = run(
        capsys, "rebuild-index", "--source", str(fake_index.parent / "articles"), "--quiet", "--index", index
    )
    assert code == 0, err
    assert f"[1] {QUESTION} ->" in out and _url(site, HARBOUR) in out
    assert [a.doc_id for a in store.answers()] == [_url(site, HARBOUR)] and not pending(fake_index)

    # Again, killed with a new article in the feed; this time `rag questions answers` catches up.
    run(capsys, "questions", "add", STORM, "--index", index)
    items = [(f"/news/{a[3]}/{a[0]}.html", a[1], a[2], a[3]) for a in (HARBOUR, LIBRARY, STORM_ARTICLE)]
    slug, title, date, section, body = STORM_ARTICLE
    site.set(f"/news/{section}/{slug}.html", article_html(title, body, date, section))
    site.set("/feed.xml", rss(site.url(""), items), "application/rss+xml")
    _killed_at_the_step(["sources", "update", *flags])
    assert len(store.answers()) == 1 and pending(fake_index)
    code, out, err = run(capsys, "questions", "answers", "--json", "--index", index)
    assert code == 0, err
    recorded = json.loads(out)
    assert [(a["question_id"], a["doc_id"]) for a in recorded] == [
        (1, _url(site, HARBOUR)),
        (2, _url(site, STORM_ARTICLE)),
    ]
    # Nothing twice: asking again finds it all recorded.
    assert ask_new_articles(fake_index).answers == []
    assert len(json.loads(run(capsys, "questions", "answers", "--json", "--index", index)[1])) == 2


def test_killed_between_recording_and_marking_the_version_reports_nothing_twice(
    fake_index, fake_embedder, monkeypatch, tmp_path
):
    store = WatchStore(fake_index)
    version = current_version(fake_index)
    from rag.index.indexdir import read_manifest

    store.add(QUESTION, baseline=(version.name, read_manifest(version)["documents"]))
    (tmp_path / "articles" / "harbour.txt").write_text("Harbour pier reopens\n\n" + HARBOUR[4], encoding="utf-8")
    build_index(tmp_path / "articles", fake_index, embedder=fake_embedder)

    def crash(self, checked):  # the process dies after answers.json was replaced, before checked.json
        raise KeyboardInterrupt

    monkeypatch.setattr(WatchStore, "set_checked", crash)
    with pytest.raises(KeyboardInterrupt):
        ask_new_articles(fake_index, embedder=fake_embedder)
    monkeypatch.undo()
    assert len(store.answers()) == 1 and pending(fake_index)
    assert ask_new_articles(fake_index, embedder=fake_embedder).answers == []
    assert len(store.answers()) == 1 and not pending(fake_index)


def test_a_build_running_elsewhere_leaves_the_asking_to_it(fake_index, fake_embedder):
    from rag.index.indexdir import build_lock, read_manifest

    store = WatchStore(fake_index)
    version = current_version(fake_index)
    store.add(QUESTION, baseline=(version.name, read_manifest(version)["documents"]))
    with build_lock(fake_index):
        report = ask_new_articles(fake_index, embedder=fake_embedder)
    assert report.skipped and "build is running" in report.skipped


@pytest.mark.model
def test_reading_above_a_floor_is_reading_or_not_reading(seed_index):
    """`read=<floor>` (the step's one query per question) gives the reader's answer when the linear model reaches
    the floor, else the linear model's, exactly as read=True and read=False do; `vector=` is the question's own."""
    from conftest import SEED_QUESTION

    read, linear = seed_index.query(SEED_QUESTION), seed_index.query(SEED_QUESTION, read=False)
    assert read.to_dict() != linear.to_dict()  # else the test could not tell them apart
    assert seed_index.query(SEED_QUESTION, read=0.0).to_dict() == read.to_dict()
    assert seed_index.query(SEED_QUESTION, read=1.01).to_dict() == linear.to_dict()
    # A kept vector (a saved question's) stands for embedding the question again.
    kept = seed_index.embedder.embed_query(SEED_QUESTION).copy()
    assert seed_index.query(SEED_QUESTION, vector=kept).to_dict() == read.to_dict()


def test_the_word_screen_reads_the_bm25_index_as_the_text_would(fake_index, fake_embedder, tmp_path):
    """Which articles hold a question's words, read from BM25's passages, is what splitting their text gives."""
    from rag.index.lexical import content_terms
    from rag.watch.asking import GATE_COVERAGE, _holding_the_words
    from rag.watch.store import SavedQuestion

    for slug, title, _, _, body in ARTICLES:
        (tmp_path / "articles" / f"{slug}.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    build_index(tmp_path / "articles", fake_index, embedder=fake_embedder)
    idx = open_index(fake_index, embedder=fake_embedder)
    docs = [d.id for d in idx.documents()]
    questions = [
        SavedQuestion(i, text)
        for i, text in enumerate(
            (QUESTION, STORM, SILENT, "Who is the librarian?", "What did the mayor say about the cost?"), 1
        )
    ]
    got = _holding_the_words(questions, {q.id: docs for q in questions}, idx)
    for q in questions:
        weights = {t: idx.lexical.idf_of(t) for t in content_terms(q.question)}
        expected = [
            d
            for d in docs
            if sum(w for t, w in weights.items() if t in content_terms(idx.document(d).text)) / sum(weights.values())
            >= GATE_COVERAGE
        ]
        assert got[q.id] == expected, q.question
    assert any(got.values()) and not all(len(v) == len(docs) for v in got.values())


def test_rag_watch_prints_the_new_answers_of_each_round(two_articles, fake_index, capsys):
    site = two_articles
    index = str(fake_index)
    run(capsys, "sources", "add", site.url("/feed.xml"), "--index", index, "--allow-private-urls")
    run(capsys, "questions", "add", QUESTION, "--index", index)
    code, out, err = run(
        capsys, "watch", "--every", "1s", "--max-updates", "2", "--index", index, "--allow-private-urls"
    )
    assert code == 0, err
    assert out.count("New answers:") == 1 and f"[1] {QUESTION} ->" in out and _url(site, HARBOUR) in out
    assert out.index("New answers:") > out.index("2 added")  # after the round's summary line
