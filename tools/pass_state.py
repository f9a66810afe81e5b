"""The state folder of a pass of tools/reader_pass.py (tools/reader_state/): the trainable weights in float16 (every
parameter but the FROZEN word embeddings), `order.npy`, and state.json, which names the weights' hash; each file is
written atomically, state.json last."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tools.reader_windows import sha256

WEIGHTS = "weights.safetensors"
FROZEN = ("bert.embeddings.word_embeddings.weight",)


def save_state(folder: Path, model, state: dict, order: np.ndarray | None = None) -> None:
    """Write the trainable weights (float16) and state.json atomically; state.json last, so that a state.json
    always names weights that are complete."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items() if k not in FROZEN}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(state["step"])})
    os.replace(tmp, folder / WEIGHTS)
    if order is not None and not (folder / "order.npy").exists():
        np.save(folder / "order.tmp.npy", order, allow_pickle=False)
        os.replace(folder / "order.tmp.npy", folder / "order.npy")
    state = {**state, "weights_sha256": sha256(folder / WEIGHTS)}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, folder / "state.json")


def load_state(folder: Path, model) -> dict:
    """Load state.json and its weights into `model` (MiniLM with a QA head); raise if the weights are not the
    ones state.json names."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if sha256(folder / WEIGHTS) != state.get("weights_sha256"):
        raise SystemExit(f"{folder / WEIGHTS} is not the file {folder / 'state.json'} names; restore both from git")
    tensors = load_file(str(folder / WEIGHTS))
    own = model.state_dict()
    missing = [k for k in own if k not in tensors and k not in FROZEN]
    if missing:
        raise SystemExit(f"{folder / WEIGHTS} lacks {missing[:3]}: it was saved from another model")
    with torch.no_grad():
        for k, v in tensors.items():
            own[k].copy_(v.float())
    return state
