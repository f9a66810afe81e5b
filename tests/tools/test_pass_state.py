"""The state folder of a reader pass (tools/pass_state.py) and the fit that resumes from it (tools/reader_pass.py),
on a tiny BERT: a fit cut in two runs ends where one run ends, weights bit for bit; a state whose weights, data,
order or training file are not the ones state.json names is refused, never trained on."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from tiny_bert import TINY, prepared_pass, tiny_model, tiny_pass_model

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tools import reader_pass  # noqa: E402
from tools.pass_state import FROZEN, WEIGHTS, load_state, save_state  # noqa: E402


@pytest.fixture
def fit(tmp_path_factory, tmp_path, monkeypatch):
    """`reader_pass.py fit` on the tiny model, in a copy of the prepared work folder; returns a runner."""
    squad2, work = prepared_pass(tmp_path_factory)
    shutil.copytree(work, tmp_path / "work")
    monkeypatch.setattr(reader_pass, "_model", tiny_pass_model)
    common = ["--squad2", str(squad2), "--work", str(tmp_path / "work"), "--batch-size", "4", "--threads", "1"]

    def run(state, *more, train=TINY, command="fit"):
        return reader_pass.main([command, str(train), *common, "--state", str(state), *more])

    return run


def _state(folder) -> dict:
    return json.loads((folder / "state.json").read_text())


def test_a_fit_cut_in_two_runs_ends_where_one_run_ends(fit, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert fit(one, "--steps", "4") == 0
    assert fit(two, "--steps", "2") == 0
    half = _state(two)
    assert half["step"] == 2 and 0 < half["groups_seen"] < half["groups_total"] and half["schedule"]["steps"] > 4
    shutil.copytree(two, tmp_path / "bare")  # the state folder alone, as another machine gets it from git
    assert fit(two, "--steps", "2") == 0
    whole, resumed = _state(one), _state(two)
    # Same step, same place in the pass, same data and order, the same schedule: and the same weights, bit for bit.
    for key in ("step", "groups_seen", "windows_seen", "tokens_seen", "data_sha256", "order_sha256", "schedule"):
        assert resumed[key] == whole[key], key
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    assert resumed["weights_sha256"] == hashlib.sha256((two / WEIGHTS).read_bytes()).hexdigest()
    assert [r["from_step"] for r in resumed["runs"]] == [0, 2] and "resumed_without_optimizer" not in resumed
    assert np.array_equal(np.load(one / "order.npy"), np.load(two / "order.npy"))

    # Without the work folder's checkpoint the optimizer's moments are rebuilt (and the learning rate warms up again),
    # but the pass goes on from the same step and the same place in its order.
    assert fit(tmp_path / "bare", "--steps", "2") == 0
    bare = _state(tmp_path / "bare")
    assert (bare["step"], bare["groups_seen"], bare["windows_seen"]) == (4, whole["groups_seen"], whole["windows_seen"])
    assert bare["resumed_without_optimizer"] == [2]


def test_a_state_that_is_not_what_state_json_names_is_refused(fit, tmp_path):
    state = tmp_path / "state"
    assert fit(state, "--steps", "1") == 0
    saved = (state / "state.json").read_text()
    weights = (state / WEIGHTS).read_bytes()

    (state / WEIGHTS).write_bytes(weights[:-8] + b"\0" * 8)
    with pytest.raises(SystemExit, match="restore both from git"):
        fit(state, "--steps", "1")
    (state / WEIGHTS).write_bytes(weights)
    (state / "state.json").write_text(saved.replace(_state(state)["weights_sha256"], "0" * 64))
    with pytest.raises(SystemExit, match="restore both from git"):
        fit(state, "--steps", "1")
    (state / "state.json").write_text(saved)

    # Other data (groups of three windows, not four), another order, another training file with the same data.
    with pytest.raises(SystemExit, match="pass data built here differs"):
        fit(state, "--steps", "1", "--group", "3")
    order = np.load(state / "order.npy")
    np.save(state / "order.npy", order[::-1].copy())
    with pytest.raises(SystemExit, match="is not the order"):
        fit(state, "--steps", "1")
    np.save(state / "order.npy", order)
    respaced = tmp_path / TINY.name
    respaced.write_text(json.dumps(json.loads(TINY.read_text())))
    with pytest.raises(SystemExit, match="is not the training file"):
        fit(state, "--steps", "1", train=respaced)

    # Nothing was trained on: the state is as the first run left it, and it still resumes.
    assert (state / "state.json").read_text() == saved and (state / WEIGHTS).read_bytes() == weights
    assert fit(state, "--steps", "1") == 0 and _state(state)["step"] == 2


def test_saved_weights_load_back_in_half_precision_without_the_frozen_embeddings(tmp_path):
    import torch

    model = tiny_model(seed=1)
    save_state(tmp_path, model, {"step": 7})
    assert _state(tmp_path)["weights_sha256"] == hashlib.sha256((tmp_path / WEIGHTS).read_bytes()).hexdigest()
    fresh = tiny_model(seed=2)
    embeddings = fresh.state_dict()[FROZEN[0]].clone()
    assert load_state(tmp_path, fresh)["step"] == 7
    for name, value in fresh.state_dict().items():
        if name in FROZEN:  # not in the file: the fresh model keeps its own
            assert torch.equal(value, embeddings)
        else:
            assert torch.equal(value, model.state_dict()[name].half().float()), name
    # Weights saved from another model (one layer, read into two) are refused.
    with pytest.raises(SystemExit, match="saved from another model"):
        load_state(tmp_path, tiny_model(seed=2, layers=2))
