"""The reader's fit script on a hand-written slice: a few steps, a checkpoint, a resume, and an export that loads."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from rag.answer.reader import OnnxReader, Window, reader_manifest
from rag.types import Sentence

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

TINY = Path(__file__).parents[1] / "fixtures" / "qa_tiny.json"


@pytest.mark.model
@pytest.mark.slow
def test_fit_checkpoint_resume_and_export(tmp_path, capsys):
    from tools import train_reader

    work, out = tmp_path / "work", tmp_path / "reader"
    args = [str(TINY), "--work", str(work), "--batch-size", "4", "--save-every", "3", "--threads", "1"]
    assert train_reader.main(args) == 0
    first = capsys.readouterr().out
    assert "windows" in first and '"held_out"' in first and (work / "checkpoint.pt").is_file()
    # A second run resumes from the checkpoint (nothing left to do) and exports.
    assert train_reader.main(args + ["--resume", "--export", str(out), "--threads", "2"]) == 0
    assert "resumed at step" in capsys.readouterr().out
    manifest = reader_manifest(out)
    # The manifest holds the settings the fit ran with, not those of the call that exported it.
    assert manifest["settings"]["threads"] == 1 and manifest["settings"]["resume"] is False
    # The resumed call reports the fit's running loss at its end, not the loss logged at the last checkpoint step.
    fit = json.loads((work / "fit.json").read_text())
    assert manifest["fit"]["final_loss"] == json.loads(first[first.index("{\n") : first.rindex("}") + 1])["final_loss"]
    assert fit["report"]["steps"] % 3 and manifest["fit"]["final_loss"] != fit["log"][-1]["loss"]
    assert manifest["training_data"]["sha256"] == hashlib.sha256(TINY.read_bytes()).hexdigest()
    assert manifest["fit"]["held_out"]["source"] == "squadshifts_reddit" and manifest["settings"]["seed"] == 13
    text = "The Lenna rises on Mount Corvo. It flows east."
    s = Sentence("x", 0, 31, text[:31])
    readings = OnnxReader(out).read("Where does the Lenna rise?", [Window((s,), 0)], {"x": text})
    assert len(readings) == 1 and readings[0][0].sentence == s
    # A further round starts from that fit's weights, on windows drawn anew, and carries the first round's record.
    # It trains each question's windows as one group here, which also reports the held-out group choice, and only
    # the questions the engine file names, against the windows it lists.
    engine = tmp_path / "engine_groups.jsonl"
    engine.write_text(
        "".join(
            json.dumps({"id": f"{src}_{n:03d}", "question": "", "negatives": ["Boats leave."], "answer_rank": 0}) + "\n"
            for src, n in (
                ("squadshifts_new_wiki", 1),
                ("squadshifts_amazon", 3),
                ("tydiqa_goldp_en_train", 5),
                ("qed_nq_train", 7),
            )
        )
    )
    again = tmp_path / "reader-2"
    assert (
        train_reader.main(
            [
                str(TINY),
                "--work",
                str(tmp_path / "work-2"),
                "--init",
                str(work / "model"),
                "--data-seed",
                "14",
                "--batch-size",
                "4",
                "--threads",
                "1",
                "--group",
                "3",
                "--engine-groups",
                str(engine),
                "--export",
                str(again),
            ]
        )
        == 0
    )
    assert "in 4 groups" in capsys.readouterr().out
    second = reader_manifest(again)
    assert second["settings"]["init"] == str(work / "model") and second["settings"]["data_seed"] == 14
    assert 0.0 <= second["fit"]["held_out"]["choice_at_1"] <= 1.0 and second["settings"]["group"] == 3
    assert second["init_fit"]["report"]["steps"] == manifest["fit"]["steps"]
    assert second["fit"]["final_loss"] is not None
    # The two fits averaged: the mean of their weights, measured on the same held-out windows, exported with both
    # fits' records (and the record of the fit the second started from).
    import torch
    from safetensors.torch import load_file

    from tools import average_readers

    mean_dir = tmp_path / "reader-avg"
    assert (
        average_readers.main(
            [str(TINY), str(work), str(tmp_path / "work-2"), "--work", str(tmp_path / "avg"), "--export", str(mean_dir)]
        )
        == 0
    )
    mean = reader_manifest(mean_dir)
    assert [c["work"] for c in mean["components"]] == [str(work), str(tmp_path / "work-2")]
    assert mean["components"][1]["init_fit"]["report"]["steps"] == manifest["fit"]["steps"]
    assert mean["fit"]["held_out"]["source"] == "squadshifts_reddit" and mean["settings"]["seed"] == 13
    assert mean["training_data"]["sha256"] == manifest["training_data"]["sha256"]
    a, b, m = (load_file(str(d / "model" / "model.safetensors")) for d in (work, tmp_path / "work-2", tmp_path / "avg"))
    assert not torch.equal(a["qa_outputs.weight"], b["qa_outputs.weight"])
    assert all(torch.allclose(m[k], (a[k] + b[k]) / 2, atol=1e-6) for k in a)
    assert len(OnnxReader(mean_dir).read("Where does the Lenna rise?", [Window((s,), 0)], {"x": text})) == 1


def test_averaging_refuses_other_models_and_folders_without_a_fit(tmp_path):
    import torch

    from tools import average_readers

    with pytest.raises(SystemExit, match="not the same model"):
        average_readers.average_state([torch.nn.Linear(3, 2), torch.nn.Linear(3, 4)])
    mean = average_readers.average_state([torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)])
    assert set(mean) == {"weight", "bias"} and mean["weight"].dtype == torch.float32
    with pytest.raises(SystemExit, match="at least two"):
        average_readers.main([str(TINY), str(tmp_path), "--work", str(tmp_path / "w")])
    with pytest.raises(SystemExit, match="holds no model"):
        average_readers.main([str(TINY), str(tmp_path), str(tmp_path), "--work", str(tmp_path / "w")])


def test_source_folder_writes_one_article_per_paragraph(tmp_path, capsys):
    from rag.evaluation.squad import load_squad

    from tools import source_folder

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


PARAGRAPH = (
    "The Lenna rises on Mount Corvo. It flows east to the sea. Mount Corvo stands at the Lenna valley's head. "
    "Bread is baked daily. Fish swim in the bay. Boats leave at dawn."
)


def _paragraphs(question="Where does the Lenna rise?", answer="Mount Corvo"):
    qa = {"question": question, "answers": [{"text": answer, "answer_start": PARAGRAPH.index(answer)}]}
    return [("squadshifts_new_wiki", 0, PARAGRAPH, [qa])]


def test_groups_put_the_answer_first_then_the_windows_most_like_the_question():
    import random

    from tools import reader_windows

    (group,) = reader_windows.make_groups(_paragraphs(), random.Random(0), cross=0.0, size=2, split_cache={})
    first, second = group
    assert first.context[first.start : first.end] == "Mount Corvo" and first.context.startswith("The Lenna rises")
    # Of the sentences clear of the answer and its neighbours, the one sharing "Lenna" with the question comes first;
    # it is read with a neighbour on each side, as the engine reads it.
    assert second.start == -1 and second.context == (
        "It flows east to the sea. Mount Corvo stands at the Lenna valley's head. Bread is baked daily."
    )
    bigger = reader_windows.make_groups(_paragraphs(), random.Random(0), cross=0.0, size=4, split_cache={})[0]
    assert len(bigger) == 4 and all(ex.start == -1 and "rises" not in ex.context for ex in bigger[1:])


def test_engine_groups_take_the_engines_windows_first_and_only_their_questions():
    import random

    from tools import reader_windows

    paragraphs = _paragraphs()
    paragraphs[0][3][0]["id"] = "q1"
    other = {
        "question": "What is baked?",
        "id": "q2",
        "answers": [{"text": "Bread", "answer_start": PARAGRAPH.index("Bread")}],
    }
    paragraphs[0][3].append(other)
    engine = {"q1": ["The Vell rises on Mount Aro.", "Boats leave at dawn."]}
    groups = reader_windows.make_groups(paragraphs, random.Random(0), cross=0.0, size=2, split_cache={}, engine=engine)
    # Only the question the engine read; its best window without the answer is its negative.
    assert [[ex.context for ex in g[1:]] for g in groups] == [["The Vell rises on Mount Aro."]]
    # With fewer engine windows than the group holds, the paragraph's windows most like the question fill it.
    (group,) = reader_windows.make_groups(
        paragraphs, random.Random(0), cross=0.0, size=4, split_cache={}, engine=engine
    )
    assert [ex.context for ex in group[1:3]] == engine["q1"] and len(group) == 4
    assert group[3].context.startswith("It flows east") and all(ex.start == -1 for ex in group[1:])


@pytest.mark.parametrize("flag", [["--engine-groups", "groups.jsonl"], ["--unanswerable", "0.5"]])
def test_group_options_without_groups_are_refused(tmp_path, flag):
    from tools import train_reader

    with pytest.raises(SystemExit, match=f"{flag[0]} needs --group K"):
        train_reader.main([str(TINY), "--work", str(tmp_path / "work"), *flag])
    assert not (tmp_path / "work").exists()


def test_engine_windows_split_into_negatives_and_the_answers_rank():
    from tools import engine_groups

    windows = [
        ("d2", 0, 20, "Mount Corvo is tall."),
        ("d1", 0, 30, "The Lenna rises on Mount Corvo."),
        ("d1", 31, 60, "It flows east to the sea."),
        ("d3", 0, 25, "Fish swim in the bay."),
    ]
    negatives, rank = engine_groups.split_windows(windows, "d1", [(19, 30)], ["mount corvo"])
    # The answer's own window is not a negative, nor is another window that holds the answer's text.
    assert rank == 1 and negatives == ["It flows east to the sea.", "Fish swim in the bay."]
    assert engine_groups.split_windows(windows[2:], "d1", [(19, 30)], ["mount corvo"])[1] == -1


def test_group_batches_keep_groups_whole_and_shared_loss_compares_windows():
    import random

    import torch

    from tools import reader_encoding, reader_scoring

    rows = [([0] * n, [0] * n, 1 if k == 0 else 0, 1 if k == 0 else 0) for k, n in ((0, 5), (1, 6), (0, 4), (1, 7))]
    ranges = [(0, 2), (2, 4)]
    batches = reader_encoding.group_batches(rows, ranges, batch_size=2, rng=random.Random(1))
    assert sorted(map(tuple, batches)) == [(0, 1), (2, 3)]

    types = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])
    mask = torch.ones_like(types)
    s = e = torch.tensor([3, 0])

    def loss(negative_score: float) -> float:
        logits = torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.0], [9.0, 0.0, 0.0, negative_score, 0.0]])
        return float(reader_scoring.shared_loss(logits, logits, types, mask, s, e, torch))

    # The gold start competes with the context tokens of both windows (not with [CLS] or the question).
    expected = -torch.log_softmax(torch.tensor([0.0, 2.0, 0.0, 0.0, 1.0, 0.0]), 0)[1]
    assert abs(loss(1.0) - float(expected)) < 1e-5
    assert loss(5.0) > loss(1.0)
    # Told where groups start, an unanswerable question's window is a group of its own with no span to normalize:
    # it neither joins the group before it nor adds a term.
    logits = torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.0], [9.0, 0.0, 0.0, 1.0, 0.0], [9.0, 0.0, 0.0, 7.0, 0.0]])
    three = torch.tensor([[0, 0, 1, 1, 1]] * 3)
    s3 = torch.tensor([3, 0, 0])
    split = float(reader_scoring.shared_loss(logits, logits, three, torch.ones_like(three), s3, s3, torch, [0, 2]))
    assert abs(split - float(expected)) < 1e-5
    alone = reader_scoring.shared_loss(logits[2:], logits[2:], three[2:], three[2:] * 0 + 1, s3[2:], s3[2:], torch, [0])
    assert float(alone) == 0.0


def test_swapped_questions_name_what_the_window_does_not():
    import random

    from tools import reader_windows

    question = "Who won the Great British Bake Off in 2012?"
    assert [question[a:b] for a, b, _ in reader_windows.question_entities(question)] == [
        "Great British Bake Off",
        "2012",
    ]
    # Abbreviations and ordinals are not cut into names or numbers.
    other = "Was the U.S. flag flown at the 3rd Council?"
    assert [other[a:b] for a, b, _ in reader_windows.question_entities(other)] == ["Council"]
    window = "John Whaite won the third series of the Great British Bake Off, broadcast in 2012."
    pool = {"name": ["Great British Bake Off", "Strictly Come Dancing"], "number": ["2012", "1987"]}
    swaps = {reader_windows.swap_entity(question, window, pool, random.Random(seed)) for seed in range(20)}
    assert swaps == {"Who won the Strictly Come Dancing in 2012?", "Who won the Great British Bake Off in 1987?"}
    # Nothing to swap when the window states none of the question's names (or the pool holds only what it states).
    assert reader_windows.swap_entity(question, "Bread is baked daily.", pool, random.Random(0)) is None
    assert (
        reader_windows.swap_entity(
            question, window, {"name": ["Great British Bake Off"], "number": ["2012"]}, random.Random(0)
        )
        is None
    )
