"""`rag eval conversations PATH`: how well follow-up questions are answered in the light of the conversation.

The set is JSON Lines, one conversation a line (docs/quality.md, "Follow-up questions", describes
bench/conversations.jsonl, the one written over the BBC articles):

    {"id": "c001", "kind": "followup", "split": "fit",
     "turns": [{"question": "...", "doc_id": "business/123", "answers": ["2,850"], "sentence": "..."},
               {"question": "How many will go in IT?", "standalone": "How many ABN Amro jobs will go in IT?",
                "doc_id": "business/123", "answers": ["1,500"], "sentence": "..."}]}

`kind` is "followup" (2-3 turns; every turn after the first leans on the ones before) or "shift" (2 turns; the second
names its own, unrelated subject). A turn is answered when the first quote contains one of its `answers`.

Each conversation is asked as a person would: the first turn alone, then each later turn with the engine's own
earlier answers as history. The same later turns are also asked alone (the baseline a follow-up must beat), a
follow-up's `standalone` rewrite alone (what a perfect rewrite would give), and a shift's second question alone (what
history must not spoil).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import RagError, SourceError

if TYPE_CHECKING:
    from rag.answer.engine import Index
    from rag.config import Settings
    from rag.types import Answer

__all__ = ["Conversation", "load_conversations", "run_conversations", "format_conversations", "cmd_eval_conversations"]

KINDS = ("followup", "shift")


@dataclass(frozen=True)
class Conversation:
    """One conversation of the set; `turns` are the raw turn objects (question, doc_id, answers, ...)."""

    id: str
    kind: str
    split: str
    turns: tuple[dict[str, Any], ...]


def load_conversations(path: str | Path, split: str = "all") -> list[Conversation]:
    """Read a conversation set, keeping one split ("fit", "report" or "all").

    Raises:
        SourceError: the file is missing, unreadable, or a line is not a valid conversation (named by line).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"conversation set {path} does not exist; pass a JSON Lines file of conversations")
    out: list[Conversation] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path} ({exc}); pass a UTF-8 JSON Lines file") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns = tuple(row["turns"])
            kind = row["kind"]
            if (
                kind not in KINDS
                or len(turns) < 2
                or not all(isinstance(t["question"], str) and t["answers"] for t in turns)
            ):
                raise ValueError(
                    "kind must be followup or shift, with at least two turns, each with question and answers"
                )
            conv = Conversation(str(row["id"]), kind, str(row.get("split", "all")), turns)
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"{path} line {n} is not a conversation ({exc}); see rag/evaluation/conversations.py"
            ) from None
        if split == "all" or conv.split == split:
            out.append(conv)
    if not out:
        raise SourceError(f"{path} has no conversations in split {split!r}")
    return out


@dataclass
class _Outcome:
    answered: bool = False
    right_article: bool = False
    confident: bool = False
    read_as_followup: bool = False
    ms: float = 0.0


def _ask(
    idx: Index, question: str, turn: dict[str, Any], threshold: float, history: Sequence[Answer] | None = None
) -> tuple[Answer, _Outcome]:
    from rag.evaluation.metrics import contains_answer, normalize_answer

    t0 = time.perf_counter()
    # Abstention off, so the first quote is judged even where the engine would abstain (as `rag eval squad` does).
    answer = idx.query(question, abstain_threshold=0.0, history=history)
    ms = (time.perf_counter() - t0) * 1000
    first = answer.citations[0] if answer.citations else None
    golds = [normalize_answer(a) for a in turn["answers"]]
    return answer, _Outcome(
        answered=bool(first and contains_answer(first.quote, golds)),
        right_article=bool(first and first.doc_id == turn.get("doc_id")),
        confident=answer.confidence >= threshold,
        read_as_followup=answer.follows is not None,
        ms=ms,
    )


def _summary(rows: Sequence[_Outcome]) -> dict[str, float]:
    from rag.evaluation.metrics import percentile

    n = len(rows)
    if not n:
        return {"n": 0}
    return {
        "n": n,
        "answers": sum(r.answered for r in rows) / n,
        "right_article": sum(r.right_article for r in rows) / n,
        "answered": sum(r.confident for r in rows) / n,
        "read_as_followup": sum(r.read_as_followup for r in rows) / n,
        "p50_ms": percentile([r.ms for r in rows], 50),
    }


ROWS = (
    ("first", "first turns"),
    ("followup_history", "follow-ups, with history"),
    ("followup_alone", "follow-ups, alone"),
    ("followup_rewritten", "follow-ups, rewritten by hand"),
    ("shift_alone", "topic shifts, alone"),
    ("shift_history", "topic shifts, with history"),
)


def run_conversations(
    idx: Index, conversations: Sequence[Conversation], *, threshold: float | None = None, show_progress: bool = False
) -> dict[str, Any]:
    """Ask every conversation (see the module docstring) and summarize each way of asking.

    Returns:
        {"rows": {row key: {"n", "answers", "right_article", "answered", "read_as_followup", "p50_ms"}},
         "conversations": {"followup": n, "shift": n}, "details": [per-turn records]}.
    """
    threshold = idx.settings.abstain_threshold if threshold is None else threshold
    missing = sorted({t["doc_id"] for c in conversations for t in c.turns if t.get("doc_id")} - _doc_ids(idx))
    if missing:
        raise SourceError(
            f"the index at {idx.index_dir} lacks {len(missing)} article(s) the set asks about "
            f"(first: {', '.join(missing[:3])}); build it from the articles the set was written over"
        )
    rows: dict[str, list[_Outcome]] = {key: [] for key, _ in ROWS}
    details: list[dict[str, Any]] = []
    from tqdm import tqdm

    for number, conv in enumerate(
        tqdm(conversations, desc="conversations", unit="conv", disable=not show_progress, file=sys.stderr)
    ):
        history = []
        for n, turn in enumerate(conv.turns):
            if n == 0:
                answer, out = _ask(idx, turn["question"], turn, threshold)
                rows["first"].append(out)
                history.append(answer)
                continue
            # Both ways of asking find the question's own vector ready, so their times differ by what reading it
            # as a follow-up costs (the previous reading's vector is not warmed: a chat pays for it too).
            # Whichever runs second finds the caches warm: the order alternates from one conversation to the next.
            idx.embedder.embed_query(turn["question"])
            if number % 2:
                _, alone = _ask(idx, turn["question"], turn, threshold)
            answer, with_history = _ask(idx, turn["question"], turn, threshold, history=list(history))
            if not number % 2:
                _, alone = _ask(idx, turn["question"], turn, threshold)
            if conv.kind == "followup":
                rows["followup_history"].append(with_history)
                rows["followup_alone"].append(alone)
                if turn.get("standalone"):
                    rows["followup_rewritten"].append(_ask(idx, turn["standalone"], turn, threshold)[1])
            else:
                rows["shift_history"].append(with_history)
                rows["shift_alone"].append(alone)
            details.append(
                {
                    "id": conv.id,
                    "turn": n + 1,
                    "kind": conv.kind,
                    "question": turn["question"],
                    "read_as": answer.read_as,
                    "with_history": with_history.answered,
                    "alone": alone.answered,
                    "quote": answer.citations[0].quote if answer.citations else None,
                }
            )
            history.append(answer)
    kinds = {k: sum(c.kind == k for c in conversations) for k in KINDS}
    return {
        "rows": {key: _summary(v) for key, v in rows.items()},
        "conversations": kinds,
        "details": details,
        "threshold": threshold,
    }


def _doc_ids(idx: Index) -> set[str]:
    return {d.id for d in idx.documents()}


def format_conversations(report: dict[str, Any], path: str = "", split: str = "all") -> str:
    """The table `rag eval conversations` prints."""
    kinds = report["conversations"]
    lines = [
        f"data: {path}  split {split}  conversations: {kinds['followup']} follow-up, {kinds['shift']} topic-shift",
        f"a turn answers when the first quote contains a gold answer; answered: confidence >= {report['threshold']:.2f}",
        "",
        f"{'':<32}{'n':>5}{'answers':>9}{'article':>9}{'answered':>10}{'read as':>9}{'p50 ms':>9}",
    ]
    for key, label in ROWS:
        r = report["rows"][key]
        if not r.get("n"):
            continue
        lines.append(
            f"{label:<32}{r['n']:>5}{r['answers']:>9.3f}{r['right_article']:>9.3f}{r['answered']:>10.3f}"
            f"{r['read_as_followup']:>9.3f}{r['p50_ms']:>9.1f}"
        )
    lines.append("")
    lines.append("read as: the share read as a follow-up of the turn before (follows is set)")
    lines.append(
        "p50 ms: later turns are timed with the question's own vector embedded beforehand, both ways in "
        "turn (alone first in every other conversation)"
    )
    return "\n".join(lines)


def cmd_eval_conversations(args: argparse.Namespace, settings: Settings) -> int:
    from rag.answer.engine import open_index

    convs = load_conversations(args.path, args.split)
    idx = open_index(args.index or settings.index_dir, settings=settings)
    try:
        report = run_conversations(
            idx, convs, threshold=args.threshold, show_progress=not args.json and sys.stderr.isatty()
        )
    finally:
        idx.close()
    if args.json:
        print(json.dumps(report if args.details else {k: v for k, v in report.items() if k != "details"}, indent=2))
    else:
        print(format_conversations(report, args.path, args.split))
    return 0


def check_args(args: argparse.Namespace) -> None:
    if args.split not in ("all", "fit", "report"):
        raise RagError(f"--split {args.split} does not apply to conversations; use all, fit or report")
