from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SEED_QUESTION, SEEDS, WALTZ
from rag.cli import main


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("rebuild-index", "ask", "search", "check-index", "serve"):
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
    # Piped output marks the short answer **like this**, on its own line and inside the quote.
    short = data["short_answer"]
    assert short and f"**{short}**" in text.splitlines()[1] and text.count(f"**{short}**") >= 2
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
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from rag.cli import rebuild_main; sys.exit(rebuild_main())"]
    out = subprocess.run([*cmd, "--source", str(SEEDS), "--index", str(tmp_path / "ix"), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["documents"] == 1 and stats["added"] == 1 and stats["chunks"] >= 2
