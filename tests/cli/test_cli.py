from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.cli.commands import main

from conftest import ROOT, SEED_QUESTION, SEEDS, WALTZ


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("rebuild-index", "ask", "chat", "search", "check-index", "serve"):
        assert cmd in out.stdout


def test_missing_index_is_one_clear_line(tmp_path):
    out = run("ask", "anything", "--index", str(tmp_path / "none"))
    assert out.returncode == 4
    assert out.stderr.strip().startswith("error: no index at")
    assert "rag rebuild-index" in out.stderr and "Traceback" not in out.stderr


def test_missing_source_exits_non_zero(tmp_path, capsys):
    code = main(["rebuild-index", "--source", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"), "--quiet"])
    assert code == 3
    assert "no such file or folder" in capsys.readouterr().err


def test_bad_setting_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAG_CHUNK_SIZE", "huge")
    assert main(["rebuild-index", "--index", str(tmp_path / "ix")]) == 2
    assert "RAG_CHUNK_SIZE" in capsys.readouterr().err


@pytest.mark.model
def test_ask_search_and_check_on_a_built_index(seed_index_dir, capsys):
    assert main(["ask", SEED_QUESTION, "--index", str(seed_index_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert WALTZ in data["citations"][0]["quote"] and data["abstained"] is False
    assert main(["ask", SEED_QUESTION, "--index", str(seed_index_dir)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Answer (confidence") and "[1]" in text and "characters" in text
    # Piped output marks the short answer **like this**, on its own line and inside the quote (which is wrapped,
    # so a long short answer may span two of its lines).
    short = data["short_answer"]
    assert short and f"**{short}**" in text.splitlines()[1] and " ".join(text.split()).count(f"**{short}**") >= 2
    assert main(["search", "intelligence sharing", "--index", str(seed_index_dir), "--k", "3", "--json"]) == 0
    passages = json.loads(capsys.readouterr().out)
    assert 1 <= len(passages) <= 3 and all("score" in p for p in passages)
    assert main(["ask", "  ", "--index", str(seed_index_dir)]) == 2
    assert "question is empty" in capsys.readouterr().err
    assert main(["check-index", "--index", str(seed_index_dir)]) == 0
    assert capsys.readouterr().out.startswith("ok:")


@pytest.mark.model
def test_rebuild_index_console_script(tmp_path):
    exe = ROOT / ".venv" / "bin" / "rebuild-index"
    cmd = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "import sys; from rag.cli.commands import rebuild_main; sys.exit(rebuild_main())"]
    )
    out = subprocess.run(
        [*cmd, "--source", str(SEEDS), "--index", str(tmp_path / "ix"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["documents"] == 1 and stats["added"] == 1 and stats["chunks"] >= 2


NEWS = ROOT / "tests" / "fixtures" / "news"


@pytest.fixture(scope="module")
def news_index_dir(tmp_path_factory, model_embedder):
    from rag import build_index

    folder = tmp_path_factory.mktemp("news-cli") / "index"
    build_index(NEWS, folder, embedder=model_embedder)
    return folder


@pytest.mark.model
def test_filters_on_ask_and_search(news_index_dir, capsys):
    question = "What did the Chancellor say about the Budget?"
    assert main(["search", question, "--index", str(news_index_dir), "--section", "politics", "--json"]) == 0
    passages = json.loads(capsys.readouterr().out)
    assert passages and {p["section"].lower() for p in passages} == {"politics"}
    assert (
        main(
            [
                "ask",
                question,
                "--index",
                str(news_index_dir),
                "--since",
                "2024-01",
                "--until",
                "2024-12-31",
                "--threshold",
                "0",
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["citations"] and all(c["date"] >= "2024-01-01" for c in answer["citations"])
    assert main(["ask", question, "--index", str(news_index_dir), "--threshold", "0"]) == 0
    text = capsys.readouterr().out
    assert "2024-03-06 · Politics · Harbour Herald" in text or "2024-03-06 · business · Northwind Wire" in text
    assert str(NEWS) not in text  # sources are shown relative to the folder built from
    assert main(["search", question, "--index", str(news_index_dir), "--sort", "newest", "--json"]) == 0
    dates = [p["date"] for p in json.loads(capsys.readouterr().out) if p["date"]]
    assert dates == sorted(dates, reverse=True)
    assert main(["ask", question, "--index", str(news_index_dir), "--section", "sport"]) == 2
    assert "unknown section 'sport'" in capsys.readouterr().err
    assert main(["search", question, "--index", str(news_index_dir), "--since", "last week"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


@pytest.mark.model
def test_console_is_quiet_unless_verbose(tmp_path):
    quiet = run("rebuild-index", "--source", str(NEWS), "--index", str(tmp_path / "ix"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "DEBUG" not in quiet.stdout + quiet.stderr and "indexed 6 documents" in quiet.stdout
    loud = run("--verbose", "rebuild-index", "--source", str(NEWS), "--index", str(tmp_path / "ix2"), "--quiet")
    assert loud.returncode == 0, loud.stderr
    assert "DEBUG:filelock" in loud.stdout + loud.stderr  # a library's own debug lines come through


@pytest.fixture(scope="module")
def conversation_index_dir(tmp_path_factory, model_embedder):
    from rag import build_index

    folder = tmp_path_factory.mktemp("cli-conversation") / "index"
    build_index(ROOT / "tests" / "fixtures" / "conversation" / "articles.jsonl", folder, embedder=model_embedder)
    return folder


@pytest.mark.model
def test_chat_reads_follow_ups_and_new_starts_over(conversation_index_dir):
    lines = "How many jobs is ABN Amro cutting?\nHow many will go in IT?\n/new\nHow many will go in IT?\n/bogus\n"
    out = subprocess.run(
        [sys.executable, "-m", "rag.cli", "chat", "--index", str(conversation_index_dir)],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    turns = out.stdout.split("you> ")
    assert len(turns) == 6
    assert "2,850" in turns[1] and "Read as" not in turns[1]
    assert "Read as: How many will go in IT? (ABN Amro)  (following question 1)" in turns[2] and "1,500" in turns[2]
    assert "(new conversation)" in turns[3]
    assert "Read as" not in turns[4]
    assert "unknown command /bogus" in turns[5]


@pytest.mark.model
def test_ask_with_a_history_file(conversation_index_dir, tmp_path, capsys):
    index = str(conversation_index_dir)
    assert main(["ask", "How many jobs is ABN Amro cutting?", "--index", index, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"question": first["question"], "answer": first}]), encoding="utf-8")
    assert main(["ask", "How many will go in IT?", "--index", index, "--history", str(history), "--json"]) == 0
    follow = json.loads(capsys.readouterr().out)
    assert follow["follows"] == 1 and "1,500" in follow["citations"][0]["quote"]
    assert main(["ask", "How many will go in IT?", "--index", index, "--history", str(history)]) == 0
    assert capsys.readouterr().out.startswith("Read as: How many will go in IT? (ABN Amro)")
    history.write_text("{not json", encoding="utf-8")
    assert main(["ask", "How many will go in IT?", "--index", index, "--history", str(history)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert main(["ask", "x?", "--index", index, "--history", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the history file" in capsys.readouterr().err
