"""Watched questions: questions saved in an index folder, and the answers that new articles gave them.

They live in `<index>/watched/`, beside the index versions rather than inside one, so no build (`--full`
included) rewrites them, a killed build leaves them as they were, and saving a question publishes nothing:
- questions.json: the saved questions (at most MAX_QUESTIONS), each with its filters and threshold;
- answers.json: the answers recorded, one per (question, article), each with its `Answer.to_dict()`;
- checked.json: the index version the questions were last asked against, with its articles' content hashes, so
  the articles a later version added or changed are those whose hash differs (rag.watch.asking asks them);
- vectors.npz: the questions' vectors, so that asking them after a build does not run the model on them again.
Every file is JSON (or a NumPy archive read without pickle) written to a temporary file and renamed over the old
one; every change holds `<index>/.watched.lock`, so two processes (a build, the web app) never lose each other's.

Example:
    >>> store = WatchStore("index/")
    >>> q = store.add("Who will run Unilever?", max_chars=2000)
    >>> [a.short_answer for a in store.answers(question_id=q.id)]
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.answer.filters import make_filters
from rag.errors import BuildLockedError, ConfigError, IndexCorruptError, QuestionError
from rag.index import indexdir

__all__ = ["MAX_QUESTIONS", "SavedQuestion", "WatchedAnswer", "Checked", "WatchStore", "now", "parse_since"]

MAX_QUESTIONS = 500
FORMAT = 1
LOCK = ".watched.lock"
HASH_CHARS = 16
"""Characters of an article's content hash kept in checked.json: 64 bits tell a changed article from its earlier
text, at a quarter of the size."""


def now() -> str:
    """The time in UTC, ISO 8601 to the second ("2026-11-30T08:00:00Z")."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class SavedQuestion:
    """A question asked again whenever new articles arrive.

    Attributes:
        id: its number, never reused ("[3]").
        question: as `rag ask` would take it (cleaned, at most max_question_chars).
        min_confidence: the confidence an answer must reach to be recorded; None: the index's abstain_threshold.
        sections, outlets: only articles of these (ignoring case); empty: any.
        added_at: when it was saved (ISO, UTC).
    """

    id: int
    question: str
    min_confidence: float | None = None
    sections: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    added_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sections"], d["outlets"] = list(self.sections), list(self.outlets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SavedQuestion:
        conf = d.get("min_confidence")
        return cls(
            int(d["id"]),
            str(d["question"]),
            None if conf is None else float(conf),
            tuple(d.get("sections") or ()),
            tuple(d.get("outlets") or ()),
            str(d.get("added_at") or ""),
        )

    def matches(self, section: str | None, outlet: str | None) -> bool:
        """Whether an article of this section and outlet is one the question watches."""
        if self.sections and (section or "").casefold() not in {s.casefold() for s in self.sections}:
            return False
        return not self.outlets or (outlet or "").casefold() in {o.casefold() for o in self.outlets}

    @property
    def key(self) -> tuple:
        """What makes two saved questions the same: the words (case, spaces and end punctuation aside) and filters."""
        words = " ".join(self.question.casefold().split()).rstrip("?!. ")
        return (
            words,
            tuple(sorted(s.casefold() for s in self.sections)),
            tuple(sorted(o.casefold() for o in self.outlets)),
        )


@dataclass(frozen=True)
class WatchedAnswer:
    """An answer a new or changed article gave a saved question, recorded once per (question, article).

    Attributes:
        id: its number, increasing in the order answers are recorded.
        question_id, question: the saved question (its text as it was asked).
        doc_id: the article of the first quote; doc_ids: every article it quotes (none is reported again for the
            question).
        title, url: the first quote's article (url None when it has none: a file, not a web page).
        recorded_at: when it was recorded (ISO, UTC); index_version: the version it was asked against.
        answer: `Answer.to_dict()` without the nearest passages: text, confidence, short_answer, citations.
    """

    id: int
    question_id: int
    question: str
    doc_id: str
    doc_ids: tuple[str, ...]
    title: str
    url: str | None
    recorded_at: str
    index_version: str
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def citation(self) -> dict[str, Any]:
        """The first citation of the answer (doc_id, start, end, quote, answer, date...)."""
        cites = self.answer.get("citations") or [{}]
        return cites[0]

    @property
    def short_answer(self) -> str | None:
        return self.answer.get("short_answer")

    @property
    def quote(self) -> str:
        return str(self.citation.get("quote") or "")

    @property
    def confidence(self) -> float:
        return float(self.answer.get("confidence") or 0.0)

    @property
    def date(self) -> str | None:
        """The quoted article's publication date (None when it has none)."""
        return self.citation.get("date")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["doc_ids"] = list(self.doc_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WatchedAnswer:
        return cls(
            int(d["id"]),
            int(d["question_id"]),
            str(d["question"]),
            str(d["doc_id"]),
            tuple(d.get("doc_ids") or (d["doc_id"],)),
            str(d.get("title") or ""),
            d.get("url"),
            str(d.get("recorded_at") or ""),
            str(d.get("index_version") or ""),
            dict(d.get("answer") or {}),
        )


@dataclass(frozen=True)
class Checked:
    """The index version the saved questions were last asked against, and its articles' content hashes (short)."""

    version: str
    documents: dict[str, str]
    checked_at: str = ""

    @classmethod
    def of(cls, version: str, hashes: dict[str, str]) -> Checked:
        return cls(version, {d: h[:HASH_CHARS] for d, h in hashes.items()}, now())

    def changed(self, hashes: dict[str, str]) -> list[str]:
        """The articles of `hashes` (a version's id -> content hash) that are new or changed since this check."""
        return [d for d, h in hashes.items() if self.documents.get(d) != h[:HASH_CHARS]]


def parse_since(since: str | None) -> tuple[int | None, str | None]:
    """`since` as an answer id ("12": answers after it) or a time ("2026-11-30", "2026-11-30T08:00:00Z": answers
    recorded at or after it); (None, None) for none.

    Raises:
        ConfigError: neither.
    """
    text = (since or "").strip()
    if not text:
        return None, None
    if text.isdigit():
        return int(text), None
    from rag.ingest.dates import parse_bound

    try:
        day = parse_bound(text[:10], "since")
    except ValueError:
        day = None
    if day is None or (len(text) > 10 and not _is_time(text)):
        raise ConfigError(
            f"since={text!r} is neither an answer id nor a date; pass an id (12) or a date or time "
            "(2026-11-30, 2026-11-30T08:00:00Z)"
        )
    return None, text if len(text) > 10 else day


def _is_time(text: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


class WatchStore:
    """The saved questions of one index folder, their answers, and what has been asked.

    Reads need no lock (every file is replaced whole); changes take the folder's watched lock.

    Args:
        index_dir: the index folder (the store is its `watched/` subfolder).
        lock_timeout_s: how long a change waits for another process's change (a build asking the questions).
    """

    def __init__(self, index_dir: str | Path, lock_timeout_s: float = 60.0):
        self.index_dir = Path(index_dir)
        self.folder = self.index_dir / indexdir.WATCHED
        self.lock_timeout_s = lock_timeout_s

    # -- reading ---------------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether a question was ever saved here (else a build has nothing to ask)."""
        return (self.folder / "questions.json").is_file()

    def questions(self) -> list[SavedQuestion]:
        return [SavedQuestion.from_dict(q) for q in self._read("questions.json").get("questions", [])]

    def question(self, question_id: int | str) -> SavedQuestion:
        """One saved question.

        Raises:
            QuestionError: no saved question has that id.
        """
        qid = _id(question_id)
        found = next((q for q in self.questions() if q.id == qid), None)
        if found is None:
            raise QuestionError(f"no saved question {question_id}; `rag questions list` shows the ids")
        return found

    def feed_id(self) -> str:
        """A UUID naming this index's answers for good (the Atom feed's id; its entries' ids derive from it)."""
        found = self._read("questions.json").get("feed_id")
        return str(found) if found else str(uuid.uuid5(uuid.NAMESPACE_URL, f"rag-answers:{self.index_dir.resolve()}"))

    def answers(
        self,
        *,
        since_id: int | None = None,
        since_time: str | None = None,
        question_id: int | None = None,
        unseen: bool = False,
    ) -> list[WatchedAnswer]:
        """The recorded answers, oldest first.

        Args:
            since_id: only those recorded after the answer of this id.
            since_time: only those recorded at or after this ISO date or time (UTC).
            question_id: only this question's.
            unseen: only those not yet marked seen (see `mark_seen`).
        """
        data = self._read("answers.json")
        seen = int(data.get("seen_through", 0))
        out = [WatchedAnswer.from_dict(a) for a in data.get("answers", [])]
        if since_id is not None:
            out = [a for a in out if a.id > since_id]
        if since_time:
            bound = _utc(since_time)
            out = [a for a in out if _utc(a.recorded_at) >= bound]
        if question_id is not None:
            out = [a for a in out if a.question_id == question_id]
        if unseen:
            out = [a for a in out if a.id > seen]
        return out

    def seen_through(self) -> int:
        """The id of the last answer marked seen (0: none)."""
        return int(self._read("answers.json").get("seen_through", 0))

    def unseen_count(self) -> int:
        data = self._read("answers.json")
        seen = int(data.get("seen_through", 0))
        return sum(1 for a in data.get("answers", []) if int(a["id"]) > seen)

    def answered(self) -> dict[int, set[str]]:
        """Question id -> the articles already quoted in its recorded answers (never reported again)."""
        out: dict[int, set[str]] = {}
        for a in self._read("answers.json").get("answers", []):
            out.setdefault(int(a["question_id"]), set()).update(a.get("doc_ids") or (a["doc_id"],))
        return out

    def checked(self) -> Checked | None:
        data = self._read("checked.json")
        if not data:
            return None
        return Checked(str(data["version"]), dict(data.get("documents") or {}), str(data.get("checked_at") or ""))

    def vectors(self, signature: str) -> dict[int, np.ndarray]:
        """The questions' saved vectors (question id -> float32 vector) made by the model `signature` names."""
        path = self.folder / "vectors.npz"
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["model"]) != signature:
                    return {}
                return {int(i): v for i, v in zip(z["ids"], np.asarray(z["vectors"], dtype=np.float32))}
        except (OSError, ValueError, KeyError):
            return {}  # a cache: made again from the questions

    # -- changing --------------------------------------------------------------------------------------------------

    @contextmanager
    def locked(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the watched lock (waiting up to `timeout_s`, default lock_timeout_s).

        Raises:
            BuildLockedError: still held by another process after the wait.
        """
        from filelock import FileLock, Timeout

        indexdir.prepare_index_dir(self.index_dir)
        lock = FileLock(str(self.index_dir / LOCK), timeout=self.lock_timeout_s if timeout_s is None else timeout_s)
        try:
            lock.acquire()
        except Timeout:
            raise BuildLockedError(
                f"the saved questions of {self.index_dir} are being asked against new articles; "
                f"try again in a moment (lock: {self.index_dir / LOCK})"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def add(
        self,
        question: str,
        *,
        min_confidence: float | str | None = None,
        section: str | Sequence[str] | None = None,
        outlet: str | Sequence[str] | None = None,
        max_chars: int = 2000,
        baseline: tuple[str, dict[str, str]] | None = None,
    ) -> SavedQuestion:
        """Save a question.

        Args:
            question: the question (the limits of `rag ask`).
            min_confidence: in [0, 1], a number or its text (as typed); None or "": the index's abstain_threshold.
            section, outlet: one name, comma-separated names or a list.
            max_chars: the max_question_chars setting.
            baseline: (version, id -> content hash) of the live index: when nothing has been asked yet, its
                articles count as already seen, so only later ones are asked.

        Raises:
            QuestionError: empty, too long, a duplicate, or MAX_QUESTIONS already saved.
            ConfigError: min_confidence not a number, or outside [0, 1].
        """
        from rag.answer.engine import check_question

        text = check_question(question, max_chars)
        conf = check_confidence(min_confidence)
        filters = make_filters(section=section, outlet=outlet)
        with self.locked():
            data = self._read("questions.json") or {"format": FORMAT, "next_id": 1, "questions": []}
            saved = [SavedQuestion.from_dict(q) for q in data["questions"]]
            new = SavedQuestion(int(data["next_id"]), text, conf, filters.sections, filters.outlets, now())
            twin = next((q for q in saved if q.key == new.key), None)
            if twin is not None:
                raise QuestionError(
                    f"this question is already saved as [{twin.id}]; remove it first with "
                    f"`rag questions remove {twin.id}` to change it"
                )
            if len(saved) >= MAX_QUESTIONS:
                raise QuestionError(
                    f"{len(saved)} questions are saved, the most an index keeps; remove some with "
                    "`rag questions remove ID`"
                )
            if baseline is not None and self.checked() is None:
                self._write("checked.json", _checked_json(Checked.of(*baseline)))
            data["questions"].append(new.to_dict())
            data["next_id"] = new.id + 1
            data.setdefault("feed_id", str(uuid.uuid4()))
            self._write("questions.json", data)
            return new

    def remove(self, question_id: int | str) -> SavedQuestion:
        """Forget a saved question and its recorded answers.

        Raises:
            QuestionError: no saved question has that id.
        """
        qid = _id(question_id)
        with self.locked():
            data = self._read("questions.json")
            kept = [q for q in data.get("questions", []) if int(q["id"]) != qid]
            if len(kept) == len(data.get("questions", [])):
                raise QuestionError(f"no saved question {question_id}; `rag questions list` shows the ids")
            gone = next(SavedQuestion.from_dict(q) for q in data["questions"] if int(q["id"]) == qid)
            answers = self._read("answers.json")
            if answers:
                answers["answers"] = [a for a in answers.get("answers", []) if int(a["question_id"]) != qid]
                self._write("answers.json", answers)
            data["questions"] = kept
            self._write("questions.json", data)
            return gone

    def mark_seen(self, through_id: int | None = None) -> None:
        """Mark the answers up to `through_id` (default: all) as seen: `answers(unseen=True)` leaves them out."""
        with self.locked():
            data = self._read("answers.json")
            if not data:
                return
            last = max((int(a["id"]) for a in data.get("answers", [])), default=0)
            mark = last if through_id is None else min(int(through_id), last)
            if mark > int(data.get("seen_through", 0)):
                data["seen_through"] = mark
                self._write("answers.json", data)

    def record(self, found: Sequence[dict[str, Any]]) -> list[WatchedAnswer]:
        """Append answers (WatchedAnswer fields without `id`); call while holding `locked()`.

        An answer for a question removed meanwhile, or for an article already answered for that question, is dropped.
        """
        if not found:
            return []
        data = self._read("answers.json") or {"format": FORMAT, "next_id": 1, "seen_through": 0, "answers": []}
        live = {q.id for q in self.questions()}
        answered = self.answered()
        out = []
        for item in found:
            qid = int(item["question_id"])
            if qid not in live or answered.get(qid, set()) & set(item["doc_ids"]):
                continue
            answer = WatchedAnswer(id=int(data["next_id"]), **item)
            answered.setdefault(qid, set()).update(answer.doc_ids)
            data["answers"].append(answer.to_dict())
            data["next_id"] = answer.id + 1
            out.append(answer)
        if out:
            self._write("answers.json", data)
        return out

    def set_checked(self, checked: Checked) -> None:
        """Record the version asked against; call while holding `locked()`, after `record`."""
        self._write("checked.json", _checked_json(checked))

    def save_vectors(self, signature: str, vectors: dict[int, np.ndarray]) -> None:
        """Keep the questions' vectors (question id -> vector) made by the model `signature` names."""
        import io
        import os

        if not vectors:
            return
        ids = sorted(vectors)
        buf = io.BytesIO()
        np.savez(
            buf,
            model=np.array(signature),
            ids=np.array(ids, dtype=np.int64),
            vectors=np.stack([np.asarray(vectors[i], dtype=np.float32) for i in ids]),
        )
        path = self.folder / "vectors.npz"
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)

    # -- files -----------------------------------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any]:
        path = self.folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(
                f"{path} cannot be read ({type(exc).__name__}); restore it from a backup, or "
                f"remove it to start over (the saved questions are in questions.json)"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IndexCorruptError(
                f"{path} is not a saved-questions file of format {FORMAT}; restore it from a "
                "backup, or remove it to start over"
            )
        return data

    def _write(self, name: str, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        indexdir.write_atomic(self.folder / name, json.dumps({**data, "format": FORMAT}, ensure_ascii=False, indent=1))


def check_confidence(value: float | str | None) -> float | None:
    """A saved question's min_confidence: None, or a number in [0, 1].

    Raises:
        ConfigError: not a number, or outside [0, 1].
    """
    if value is None or value == "":
        return None
    try:
        conf = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"min confidence {value!r} is not a number; pass one between 0 and 1 (e.g. 0.5)") from None
    if math.isnan(conf) or not 0.0 <= conf <= 1.0:
        raise ConfigError(f"min confidence {value} is outside [0, 1]; pass one between 0 and 1 (e.g. 0.5)")
    return conf


def _checked_json(checked: Checked) -> dict[str, Any]:
    return {"version": checked.version, "checked_at": checked.checked_at, "documents": checked.documents}


def _id(value: int | str) -> int:
    try:
        qid = int(str(value).strip().strip("[]"))
    except ValueError:
        raise QuestionError(f"{value!r} is not a question id; `rag questions list` shows the ids (numbers)") from None
    return qid


def _utc(text: str) -> str:
    """An ISO date or time as comparable UTC text ("2026-11-30" -> "2026-11-30T00:00:00Z")."""
    import datetime as dt

    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if len(text) > 10 else text + "T00:00:00+00:00")
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
