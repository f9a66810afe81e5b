"""`--device`: cuda where PyTorch sees a GPU, refused with the fix where it does not, auto falls back to cpu."""

from __future__ import annotations

import sys
import types

import pytest

from rag.cli.commands import build_parser
from rag.config import Settings
from rag.errors import ConfigError
from rag.index.embedding import make_embedder, resolve_device


def _torch_with_cuda(monkeypatch, available: bool) -> None:
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: available))
    monkeypatch.setitem(sys.modules, "torch", fake)


def test_cpu_never_imports_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # importing it would fail
    assert resolve_device("cpu") == "cpu"


def test_cuda_is_refused_with_the_fix_when_no_gpu(monkeypatch):
    _torch_with_cuda(monkeypatch, False)
    with pytest.raises(ConfigError, match="no GPU.*--device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="no GPU"):
        make_embedder("all-MiniLM-L6-v2", "onnx-int8", "cuda")
    assert resolve_device("auto") == "cpu"


def test_cuda_and_auto_pick_the_gpu_when_there_is_one(monkeypatch):
    _torch_with_cuda(monkeypatch, True)
    assert resolve_device("cuda") == resolve_device("auto") == "cuda"
    emb = make_embedder("all-MiniLM-L6-v2", "onnx-int8", "auto")
    # On a GPU the model runs in PyTorch; the manifest still names the backend the settings chose.
    assert emb.device == "cuda" and emb.backend == "onnx-int8"


def test_device_is_a_setting_and_a_build_flag():
    assert Settings().device == "cpu"
    with pytest.raises(ConfigError, match="device"):
        Settings(device="tpu")
    args = build_parser().parse_args(["rebuild-index", "--device", "auto"])
    assert args.device == "auto"


def test_the_device_is_not_tied_to_the_index(tmp_path, fake_embedder):
    from rag import build_index, open_index

    (tmp_path / "a.txt").write_text("The Rhine flows north through Germany.")
    build_index(tmp_path / "a.txt", tmp_path / "ix", Settings(device="auto"), embedder=fake_embedder)
    idx = open_index(tmp_path / "ix", embedder=fake_embedder)
    try:
        assert idx.manifest["settings"]["device"] == "auto"  # what the build ran with
        assert idx.settings.device == "cpu"  # what this process runs with: its own choice, no rebuild
    finally:
        idx.close()
