"""rag.watch.store and `rag questions`: saved questions in the index folder, their limits and errors, answers recorded
once per (question, article), and a store that no build, `--full` included, touches (fake embedder)."""

from __future__ import annotations

import json
import shutil

import pytest

from rag import build_index
from rag.cli.commands import main as cli_main
from rag.errors import ConfigError, IndexCorruptError, QuestionError
from rag.index.indexdir import current_version, read_manifest
from rag.watch.store import MAX_QUESTIONS, Checked, WatchStore, parse_since

from conftest import SEEDS

HARBOUR = """Harbour pier reopens after repairs
(Jane Roe, Example Wire)
The Port Elsa harbour authority reopened the northern pier on Tuesday after three weeks of repairs. Ferries will run
on the winter timetable until March. The mayor said the repairs cost less than expected.
"""


@pytest.fixture
def index(tmp_path, monkeypatch, fake_embedder):
    """A seed index (fake embedder, also for in-process CLI calls) and its article folder."""
    import rag.answer.engine
    import rag.index.build
    import rag.index.version

    for module in (rag.index.build, rag.index.version):
        monkeypatch.setattr(module, "make_embedder", lambda model, backend="torch", device="cpu": fake_embedder)
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    folder = tmp_path / "index"
    build_index(src, folder, embedder=fake_embedder)
    return folder


def run(capsys, *args):
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _baseline(index):
    version = current_version(index)
    return version.name, read_manifest(version)["documents"]


def test_add_list_remove_through_the_cli(index, capsys):
    code, out, _ = run(capsys, "questions", "add", "Who will run Unilever?", "--index", str(index))
    assert code == 0 and out.startswith("saved [1] Who will run Unilever?")
    code, out, err = run(
        capsys,
        "questions",
        "add",
        "What did the Bank of England decide?",
        "--section",
        "business",
        "--min-confidence",
        "0.5",
        "--index",
        str(index),
    )
    assert code == 0 and "[2]" in out and "section business" in out and "min confidence 0.5" in out
    assert "no indexed article has section 'business' yet" in err  # accepted: a feed may bring it later
    code, out, _ = run(capsys, "questions", "list", "--json", "--index", str(index))
    saved = json.loads(out)
    assert [(q["id"], q["sections"], q["min_confidence"]) for q in saved] == [(1, [], None), (2, ["business"], 0.5)]
    code, out, _ = run(capsys, "questions", "remove", "1", "--index", str(index))
    assert code == 0 and "removed [1]" in out
    code, out, _ = run(capsys, "questions", "list", "--index", str(index))
    assert "[1]" not in out and "[2] What did the Bank of England decide?" in out
    # Ids are never reused: the next one is 3.
    code, out, _ = run(capsys, "questions", "add", "Who will run Unilever?", "--index", str(index))
    assert "saved [3]" in out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["add", ""], 2, "the question is empty"),
        (["add", "x" * 2001], 2, "the limit is 2,000"),
        (["add", "Who?", "--min-confidence", "1.5"], 2, "outside [0, 1]"),
        (["add", "Who?", "--min-confidence", "nan"], 2, "outside [0, 1]"),
        (["add", "Who?", "--min-confidence", "high"], 2, "is not a number"),
        (["remove", "7"], 2, "no saved question 7"),
        (["remove", "seven"], 2, "is not a question id"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(index, capsys, args, code, message):
    got, out, err = run(capsys, "questions", *args, "--index", str(index))
    assert got == code
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_duplicates_and_the_limit(index, capsys):
    store = WatchStore(index)
    store.add("Who will run Unilever?", baseline=_baseline(index))
    # The same words, whatever the case, spacing and end punctuation: refused with the id it has.
    code, _, err = run(capsys, "questions", "add", "  who will RUN unilever ", "--index", str(index))
    assert code == 2 and "already saved as [1]" in err
    # Another filter makes another question.
    assert store.add("Who will run Unilever?", section="business").id == 2
    for n in range(MAX_QUESTIONS - 2):
        store.add(f"Question number {n}?")
    code, _, err = run(capsys, "questions", "add", "One too many?", "--index", str(index))
    assert code == 2 and f"{MAX_QUESTIONS} questions are saved" in err
    assert len(store.questions()) == MAX_QUESTIONS


def test_no_index_is_exit_4(tmp_path, capsys):
    code, _, err = run(capsys, "questions", "add", "Who?", "--index", str(tmp_path / "none"))
    assert code == 4 and "rag rebuild-index" in err


def test_the_store_outlives_every_build_and_a_full_one(index, fake_embedder, tmp_path):
    store = WatchStore(index)
    store.add("When did the harbour authority reopen the northern pier?", baseline=_baseline(index))
    before = {p.name: p.read_bytes() for p in store.folder.iterdir()}
    (tmp_path / "articles" / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    build_index(tmp_path / "articles", index, embedder=fake_embedder)
    build_index(tmp_path / "articles", index, embedder=fake_embedder, full=True)
    # A build never writes there: the folder is not part of any version.
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == before
    assert [q.question for q in store.questions()] == ["When did the harbour authority reopen the northern pier?"]


def test_answers_are_kept_once_per_question_and_article(index):
    store = WatchStore(index)
    q = store.add("Who?", baseline=_baseline(index))
    item = {
        "question_id": q.id,
        "question": q.question,
        "doc_id": "a",
        "doc_ids": ("a", "b"),
        "title": "A",
        "url": None,
        "recorded_at": "2026-11-30T08:00:00Z",
        "index_version": "v-1",
        "answer": {"citations": []},
    }
    with store.locked():
        first = store.record([item])
        again = store.record([item, {**item, "doc_id": "b", "doc_ids": ("b",)}, {**item, "question_id": 99}])
    assert [a.id for a in first] == [1] and again == []  # b was quoted by answer 1; question 99 does not exist
    assert store.answered() == {q.id: {"a", "b"}}
    assert store.unseen_count() == 1
    store.mark_seen()
    assert store.answers(unseen=True) == [] and store.seen_through() == 1
    store.remove(q.id)
    assert store.answers() == []  # a question's answers go with it


def test_checked_articles_are_compared_by_hash():
    checked = Checked.of("v-1", {"a": "1" * 64, "b": "2" * 64})
    assert checked.changed({"a": "1" * 64, "b": "3" * 64, "c": "4" * 64}) == ["b", "c"]


def test_since_is_an_answer_id_or_a_date():
    assert parse_since("") == (None, None)
    assert parse_since("12") == (12, None)
    assert parse_since("2026-11-30") == (None, "2026-11-30")
    assert parse_since("2026-11-30T08:00:00Z") == (None, "2026-11-30T08:00:00Z")
    for bad in ("yesterday", "2026-13-01", "2026-11-30Tnoon"):
        with pytest.raises(ConfigError, match="neither an answer id nor a date"):
            parse_since(bad)


def test_a_damaged_file_is_named_and_never_overwritten(index, capsys):
    store = WatchStore(index)
    store.add("Who?", baseline=_baseline(index))
    path = store.folder / "questions.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="questions.json"):
        store.questions()
    code, _, err = run(capsys, "questions", "add", "Why?", "--index", str(index))
    assert code == 6 and "questions.json" in err
    assert path.read_text(encoding="utf-8") == "{not json"


def test_the_question_rules_are_those_of_ask(index):
    store = WatchStore(index)
    q = store.add("\x00what would\x07 lift the pause?\n", baseline=_baseline(index))
    assert q.question == "what would  lift the pause?"  # control characters blanked, as `rag ask` does
    with pytest.raises(QuestionError, match="limit is 10"):
        store.add("x" * 11, max_chars=10)
