"""The reader's fit script on a hand-written slice: a few steps, a checkpoint, a resume, and an export that loads."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from rag.reader import OnnxReader, Window, reader_manifest
from rag.types import Sentence

sys.path.insert(0, str(ROOT / "tools"))

TINY = Path(__file__).parent / "fixtures" / "qa_tiny.json"


@pytest.mark.model
@pytest.mark.slow
def test_fit_checkpoint_resume_and_export(tmp_path, capsys):
    import train_reader

    work, out = tmp_path / "work", tmp_path / "reader"
    args = [str(TINY), "--work", str(work), "--batch-size", "4", "--save-every", "2", "--threads", "1"]
    assert train_reader.main(args) == 0
    first = capsys.readouterr().out
    assert "windows" in first and '"held_out"' in first and (work / "checkpoint.pt").is_file()
    # A second run resumes from the checkpoint (nothing left to do) and exports.
    assert train_reader.main(args + ["--resume", "--export", str(out)]) == 0
    assert "resumed at step" in capsys.readouterr().out
    manifest = reader_manifest(out)
    assert manifest["training_data"]["sha256"] == hashlib.sha256(TINY.read_bytes()).hexdigest()
    assert manifest["fit"]["held_out"]["source"] == "squadshifts_reddit" and manifest["settings"]["seed"] == 13
    text = "The Lenna rises on Mount Corvo. It flows east."
    s = Sentence("x", 0, 31, text[:31])
    readings = OnnxReader(out).read("Where does the Lenna rise?", [Window((s,), 0)], {"x": text})
    assert len(readings) == 1 and readings[0][0].sentence == s
    # A further round starts from that fit's weights, on windows drawn anew, and carries the first round's record.
    again = tmp_path / "reader-2"
    assert train_reader.main([str(TINY), "--work", str(tmp_path / "work-2"), "--init", str(work / "model"),
                              "--data-seed", "14", "--batch-size", "4", "--threads", "1", "--export", str(again)]) == 0
    second = reader_manifest(again)
    assert second["settings"]["init"] == str(work / "model") and second["settings"]["data_seed"] == 14
    assert second["init_fit"]["report"]["steps"] == manifest["fit"]["steps"]
    assert second["fit"]["final_loss"] is not None


def test_source_folder_writes_one_article_per_paragraph(tmp_path, capsys):
    import source_folder

    from rag.evaluation import load_squad

    out = tmp_path / "reddit"
    assert source_folder.main([str(TINY), "squadshifts_reddit", str(out)]) == 0
    data = load_squad(out)
    assert list(data.articles) == ["squadshifts_reddit_0000"]
    assert len(data.questions) == 2 and all(q.answerable for q in data.questions)
    # Each answer's document offsets land on its text: the folder is usable by `rag eval squad` as it stands.
    title, text = data.articles["squadshifts_reddit_0000"]
    for q in data.questions:
        s, e = q.answers[0]
        assert text[s:e] == q.answer_texts[0]
    with pytest.raises(SystemExit, match="no paragraph of source"):
        source_folder.main([str(TINY), "no_such_source", str(tmp_path / "none")])
