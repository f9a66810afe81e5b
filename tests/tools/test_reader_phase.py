"""The reader's second phase (tools/reader_phase.py): it starts only from a complete pass, trains single windows into
a state folder of its own that names where it started, resumes on the same data only, and exports through the
pass's command."""

from __future__ import annotations

import json
import random
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tiny_bert import squad2_folder  # noqa: E402

from tools import reader_pass, reader_phase  # noqa: E402
from tools.reader_windows import HELD_OUT, load_paragraphs  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "qa_tiny.json"


def test_phase_windows_leave_the_held_out_source_out_and_follow_the_seed(tmp_path):
    from tiny_bert import tokenizer

    paragraphs = load_paragraphs(TINY)
    squad2 = squad2_folder(tmp_path / "squad2")
    rows = reader_phase.phase_rows(paragraphs, squad2, tokenizer(), 5, 8, 0.5, 128, 40)
    again = reader_phase.phase_rows(paragraphs, squad2, tokenizer(), 5, 8, 0.5, 128, 40)
    other = reader_phase.phase_rows(paragraphs, squad2, tokenizer(), 6, 8, 0.5, 128, 40)
    assert reader_phase.rows_digest(rows) == reader_phase.rows_digest(again) != reader_phase.rows_digest(other)
    # 8 drawn windows, then the unanswerable question's windows, all "no answer".
    assert 8 < len(rows) <= 8 + 4 and all(r[2] == 0 for r in rows[8:])
    assert any(r[2] > 0 for r in rows[:8]) and any(r[2] == 0 for r in rows[:8])
    held = {p[2] for p in paragraphs if p[0] == HELD_OUT}
    assert held  # the fixture has held-out paragraphs for the check below to mean something
    tok = tokenizer()
    texts = [tok.decode([t for t, ty in zip(ids, types) if ty == 1]) for ids, types, _, _ in rows]
    for text in texts:
        assert not any(text[:40].lower() in h.lower() for h in held), text


def test_phase_starts_from_a_complete_pass_only_saves_and_exports(tmp_path, capsys):
    work, start, state = tmp_path / "work", tmp_path / "start", tmp_path / "phase"
    squad2 = squad2_folder(tmp_path / "squad2")
    common = [str(TINY), "--squad2", str(squad2), "--work", str(work), "--batch-size", "2", "--threads", "1"]
    random.seed(0)
    assert reader_pass.main(["fit", *common, "--state", str(start), "--order", "random", "--steps", "1"]) == 0
    phase = [*common, "--start", str(start), "--state", str(state), "--windows", "6", "--save-minutes", "100"]
    with pytest.raises(SystemExit, match="not a complete pass"):
        reader_phase.main(["fit", *phase])
    assert not (state / "state.json").exists()

    saved = json.loads((start / "state.json").read_text())
    (start / "state.json").write_text(json.dumps({**saved, "complete": True}))
    capsys.readouterr()
    assert reader_phase.main(["fit", *phase]) == 0
    out = capsys.readouterr().out
    assert "held out at the start" in out
    done = json.loads((state / "state.json").read_text())
    assert done["complete"] and done["step"] == done["schedule"]["steps"] > 0
    assert done["from"]["weights_sha256"] == saved["weights_sha256"] and done["from"]["step"] == 1
    assert done["saves"][-1]["full"] and 0.0 <= done["saves"][-1]["held_out"]["auroc_no_answer_alone"] <= 1.0
    assert done["weights_sha256"] != saved["weights_sha256"]  # it trained

    # A resume on other data is refused, and the state is left as it was.
    with pytest.raises(SystemExit, match="phase data built here differs"):
        reader_phase.main(["fit", *phase[:-4], "--windows", "7", "--save-minutes", "100"])
    assert json.loads((state / "state.json").read_text()) == done

    # A complete phase resumed runs no step and keeps its weights.
    assert reader_phase.main(["fit", *phase]) == 0
    assert json.loads((state / "state.json").read_text())["weights_sha256"] == done["weights_sha256"]

    from rag.answer.reader import reader_manifest

    reader = tmp_path / "reader"
    assert reader_pass.main(["export", *common, "--state", str(state), "--out", str(reader)]) == 0
    assert reader_manifest(reader)["fit"]["pass"]["step"] == done["step"]
