"""The reader in the answer path: which pooled sentences it reads, and how its verdict joins the linear score.

The linear model of `rag.answer.ranking` scores every pooled sentence cheaply; the reader (`rag.answer.reader`) then reads the
`candidates` best of them, each with its neighbours, and gives every sentence it saw a margin (best span minus
no-answer). A read sentence's score becomes `linear * score + reader * margin`; a sentence it did not read gets
the lowest margin the reader gave, so that reading can only lift sentences. The two coefficients and the
confidence model that uses the reader's margins are fitted together on the fit half of SQuAD 2.0 dev by
`tools/fit_answer_model.py --reader` and stored beside the reader (`calibration.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag.answer.ranking import AnswerModel, Candidate
from rag.answer.reader import Reader, Reading, Window
from rag.errors import ConfigError
from rag.types import Sentence

__all__ = ["Blend", "CALIBRATION_FILE", "load_blend", "read_candidates", "reader_features", "rescore"]

CALIBRATION_FILE = "calibration.json"

Key = tuple[str, int]


@dataclass(frozen=True)
class Blend:
    """How the reader's margin joins the linear score, and the confidence model that reads both.

    Attributes:
        linear, reader: coefficients of the linear sentence score and of the reader's margin.
        candidates: how many of the best linear candidates the reader reads (each with its neighbours).
        more, more_below: how many more it reads when its best margin over those is below `more_below` (0: never),
            so that the questions it is unsure of get more of the right sentences read at the same median cost.
        model: the confidence (and presence) model over `rag.answer.ranking.confidence_features` plus `reader_features`.
        threshold: the abstention threshold this calibration suggests.
    """

    linear: float = 1.0
    reader: float = 1.0
    candidates: int = 8
    more: int = 0
    more_below: float = 0.0
    model: AnswerModel = field(default_factory=lambda: AnswerModel({}, {}, 1.0))
    threshold: float = 0.5


def load_blend(folder: str | Path, base: AnswerModel) -> Blend:
    """The calibration stored beside a reader; the sentence weights stay those of `base`.

    Raises:
        ConfigError: the file is missing or malformed (the reader folder was not calibrated).
    """
    path = Path(folder) / CALIBRATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Blend(
            linear=float(data["linear"]),
            reader=float(data["reader"]),
            candidates=int(data["candidates"]),
            more=int(data.get("more") or 0),
            more_below=float(data.get("more_below") or 0.0),
            model=AnswerModel(
                base.weights,
                {k: float(v) for k, v in data["confidence_weights"].items()},
                float(data.get("margin", base.margin)),
                {k: float(v) for k, v in data.get("presence_weights", {}).items()},
            ),
            threshold=float(data["suggested_threshold"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} cannot be read ({type(exc).__name__}); calibrate the reader with "
            "`tools/fit_answer_model.py --reader FOLDER`, or pass --reader none"
        ) from None


def windows_for(
    candidates: Sequence[Candidate], passage_sentences: Sequence[Sequence[Sentence]], top: int, whole: bool = False
) -> list[Window]:
    """Windows around the `top` best distinct candidate sentences: each with its neighbours in its passage.

    With `whole`, each of the passages of those candidates is read whole instead (one window per passage, its
    sentences in order), so that the model sees every sentence of the passage at once; `tools/passage_reading.py`
    measures the two (docs/quality.md, "Whole passages or windows")."""
    out: list[Window] = []
    seen: set[Key] = set()
    passages: set[int] = set()
    for c in candidates:
        if len(seen) >= top:
            break
        key = (c.sentence.doc_id, c.sentence.start)
        if key in seen:
            continue
        seen.add(key)
        sents = passage_sentences[c.passage]
        pos = next((i for i, s in enumerate(sents) if s.start == c.sentence.start), None)
        if pos is None:
            out.append(Window((c.sentence,), 0))
            continue
        if whole:
            if c.passage not in passages:
                passages.add(c.passage)
                out.append(Window(tuple(sents), pos))
            continue
        lo, hi = max(0, pos - 1), min(len(sents), pos + 2)
        out.append(Window(tuple(sents[lo:hi]), pos - lo))
    return out


def read_candidates(
    question: str,
    candidates: Sequence[Candidate],
    passage_sentences: Sequence[Sequence[Sentence]],
    reader: Reader,
    texts: Mapping[str, str],
    top: int,
    whole: bool = False,
    more: int = 0,
    more_below: float = 0.0,
) -> dict[Key, Reading]:
    """The reader's best reading of every sentence it saw, by (doc_id, start).

    With `more`, when no reading of the first `top` windows reaches `more_below`, the windows of the next `more`
    candidates are read too (a second call, so that the confident majority pays for `top` windows only)."""
    windows = windows_for(candidates, passage_sentences, top, whole)
    best: dict[Key, Reading] = {}
    by_doc = dict(texts)

    def keep(batch: Sequence[Window]) -> None:
        for readings in reader.read(question, batch, by_doc):
            for r in readings:
                key = (r.sentence.doc_id, r.sentence.start)
                if key not in best or r.score > best[key].score:
                    best[key] = r

    keep(windows)
    if more > 0 and not whole and (not best or max(r.score for r in best.values()) < more_below):
        extra = windows_for(candidates, passage_sentences, top + more)[len(windows) :]
        if extra:
            keep(extra)
    return best


def rescore(candidates: Sequence[Candidate], readings: Mapping[Key, Reading], blend: Blend) -> list[Candidate]:
    """Candidates re-scored with the reader's margins (`linear * score + reader * margin`), best first."""
    if not readings:
        return list(candidates)
    floor = min(r.score for r in readings.values())
    out = []
    for c in candidates:
        r = readings.get((c.sentence.doc_id, c.sentence.start))
        margin = r.score if r is not None else floor
        out.append(Candidate(c.sentence, c.passage, c.features, blend.linear * c.score + blend.reader * margin))
    out.sort(key=lambda c: (-c.score, c.passage, c.sentence.start))
    return out


def reader_features(best: Candidate, readings: Mapping[Key, Reading]) -> dict[str, float]:
    """Confidence features from the reader: its margin on the quoted sentence, its best margin anywhere, and how
    far the best trails the runner-up (scaled to about [-1, 1])."""
    if not readings:
        return {"reader_top": -1.0, "reader_max": -1.0, "reader_lead": 0.0, "reader_positive": 0.0}
    margins = sorted((r.score for r in readings.values()), reverse=True)
    top = readings.get((best.sentence.doc_id, best.sentence.start))
    top_margin = top.score if top is not None else margins[-1]
    second = margins[1] if len(margins) > 1 else margins[0] - 5.0
    return {
        "reader_top": _squash(top_margin),
        "reader_max": _squash(margins[0]),
        "reader_lead": _squash(margins[0] - second),
        "reader_positive": 1.0 if margins[0] > 0 else 0.0,
    }


def _squash(x: float) -> float:
    return math.tanh(x / 8.0)
