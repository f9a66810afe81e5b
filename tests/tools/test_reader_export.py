"""A fit's export (tools/reader_export.py, and `reader_pass.py export`) on a tiny BERT: the int8 ONNX reader loads
through rag's reader loader and reads windows as the fit encoded them, and its manifest names the training data's
hash, the settings and the figures."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import pytest
import torch
from tiny_bert import TINY, prepared_pass, tiny_model, tiny_pass_model, tokenizer

from rag.answer.reader import OnnxReader, Window, load_reader, reader_manifest
from rag.types import Sentence

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # tools/ is a package at the repository root

from tools import reader_pass, train_reader  # noqa: E402
from tools.pass_state import WEIGHTS  # noqa: E402
from tools.reader_encoding import encode  # noqa: E402
from tools.reader_windows import Example  # noqa: E402

TEXT = "The Lenna rises on Mount Corvo. It flows east to the sea."
QUESTION = "Where does the Lenna rise?"


@pytest.fixture(autouse=True)
def _own_onnx_cache(tmp_path, monkeypatch):
    """The loader's signed-weights copy of an exported reader goes to the test's folder, not the user's cache."""
    monkeypatch.setenv("RAG_ONNX_CACHE", str(tmp_path / "onnx-cache"))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_reader(folder, manifest: dict) -> None:
    """The files the manifest lists are those in the folder; rag's loader opens it and reads a window, token for
    token as the fit encoded it."""
    for name, record in manifest["files"].items():
        assert record == {"sha256": _sha256(folder / name), "bytes": (folder / name).stat().st_size}, name
    assert set(manifest["files"]) == {"reader_int8.onnx", "tokenizer.json"}
    reader = load_reader(str(folder))
    assert isinstance(reader, OnnxReader)
    first, second = Sentence("x", 0, 31, TEXT[:31]), Sentence("x", 32, len(TEXT), TEXT[32:])
    (readings,) = reader.read(QUESTION, [Window((first, second), 0)], {"x": TEXT})
    assert [r.sentence for r in readings] == [first, second]
    q_ids = reader._tok.encode(QUESTION, add_special_tokens=False).ids[: reader.max_question]
    ids, offsets, _ = reader._encode_window(q_ids, Window((first, second), 0), TEXT)
    ((trained, types, _, _),) = encode(tokenizer(), [Example(QUESTION, TEXT, -1, -1)], 128, 40)
    assert trained == [reader._cls, *q_ids, reader._sep, *ids, reader._sep] and types.count(1) == len(ids) + 1


def test_a_fit_exports_a_reader_that_rag_loads_with_its_manifest(tmp_path):
    init = tmp_path / "init"
    tiny_model(seed=3).save_pretrained(init)
    tokenizer().save_pretrained(init)
    work, out = tmp_path / "work", tmp_path / "reader"
    args = ["--work", str(work), "--init", str(init), "--batch-size", "4", "--threads", "1", "--export", str(out)]
    assert train_reader.main([str(TINY), *args]) == 0
    manifest = reader_manifest(out)
    fit = json.loads((work / "fit.json").read_text())
    assert manifest["base_model"].startswith("all-MiniLM-L6-v2")
    assert manifest["training_data"] == {
        "file": TINY.name,
        "sha256": _sha256(TINY),
        "held_out_source": "squadshifts_reddit",
    }
    assert manifest["settings"] == fit["settings"]
    assert manifest["settings"]["init"] == str(init) and manifest["settings"]["seed"] == 13
    assert (manifest["settings"]["max_length"], manifest["settings"]["max_question"]) == (128, 40)
    assert manifest["fit"] == fit["report"] and manifest["fit"]["steps"] >= 1 and manifest["fit"]["train_windows"] > 0
    held_out = manifest["fit"]["held_out"]
    assert held_out["source"] == "squadshifts_reddit" and held_out["windows"] > 0
    assert all(0.0 <= held_out[k] <= 1.0 for k in ("span_f1", "auroc", "choice_at_1"))
    assert "init_fit" not in manifest  # the tiny model was fitted by no earlier run
    _check_reader(out, manifest)


def test_a_pass_exports_its_state_with_a_manifest_that_names_it(tmp_path_factory, tmp_path, monkeypatch):
    squad2, prepared = prepared_pass(tmp_path_factory)
    shutil.copytree(prepared, tmp_path / "work")
    monkeypatch.setattr(reader_pass, "_model", tiny_pass_model)
    state, out = tmp_path / "state", tmp_path / "reader"
    common = [str(TINY), "--squad2", str(squad2), "--work", str(tmp_path / "work"), "--state", str(state)]
    assert reader_pass.main(["fit", *common, "--steps", "2", "--batch-size", "4", "--threads", "1"]) == 0
    assert reader_pass.main(["export", *common, "--out", str(out)]) == 0
    saved = json.loads((state / "state.json").read_text())
    manifest = reader_manifest(out)
    assert manifest["training_data"]["sha256"] == _sha256(TINY) == saved["train_sha256"]
    assert manifest["settings"] == {**saved["settings"], "max_length": 128, "max_question": 40}
    assert manifest["fit"]["pass"] == {
        "step": 2,
        "groups_seen": saved["groups_seen"],
        "groups_total": saved["groups_total"],
        "tokens_seen": saved["tokens_seen"],
        "complete": False,
    }
    assert manifest["fit"]["state_weights_sha256"] == saved["weights_sha256"]
    assert manifest["fit"]["schedule"] == saved["schedule"]
    assert manifest["fit"]["held_out"] == {"source": "squadshifts_reddit", **saved["saves"][-1]["held_out"]}
    # What was exported is the state's weights (the model folder the ONNX file is made from holds them).
    from safetensors.torch import load_file

    exported = load_file(str(tmp_path / "work" / "export-model" / "model.safetensors"))
    for name, value in load_file(str(state / WEIGHTS)).items():
        assert torch.equal(exported[name], value.float()), name
    _check_reader(out, manifest)
