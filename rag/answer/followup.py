"""Follow-up questions: read a question in the light of the conversation so far, without a generative model.

A chat question often leans on the turn before it: "How many will go in IT?" after "How many jobs is ABN Amro
cutting?", "What did he say about the Budget?" after "Who is Gordon Brown's closest ally?". Such a question, asked
alone, retrieves whatever matches its few words. `read_followup` decides from the words alone whether the question
leans on the previous turn and, when it does, says how to ask it instead:

- `carry`: the previous turn's subject (its entities and content words, and its short answer), which retrieval adds
  at a lower weight than the question's own words;
- `prefer`: the articles the previous answer cited, whose sentences gain a little in ranking;
- `read_as`: the question with a pronoun replaced by the entity the previous turn was about (or, when there is no
  pronoun to replace, the question followed by that subject), which is what the reader reads and what the answer
  shows ("read as").

A question with its own subject (a name the conversation has not mentioned, and no pronoun or connective pointing
back) is read alone, exactly as without history, so a change of topic is not pulled back to the old one.

History is never stored: it arrives with each call, is validated and trimmed here, and goes no further than the
answer's `read_as`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.answer.ranking import Candidate
from rag.errors import QuestionError
from rag.index.lexical import STOP_WORDS, _stem
from rag.types import Answer

__all__ = ["Turn", "FollowUp", "parse_history", "read_followup", "prefer_articles", "MAX_TURNS", "MAX_TURN_CHARS"]

MAX_TURNS = 20
"""Turns of history kept (the most recent); older ones are dropped, since only the last few can be leaned on."""

MAX_TURN_CHARS = 4000
"""Longest question, read-as or quote kept from a history turn; longer text is cut to this."""

# How a follow-up is asked, chosen on the fit part of bench/conversations.jsonl (docs/quality.md has the sweep).
CARRY_DENSE = 0.5
"""Weight of the previous turn's reading's vector added to the question's (then renormalized)."""
CARRY_LEXICAL = 0.6
"""Weight of the previous turn's words in BM25, against 1 for the question's own words."""
PREVIOUS_PASSAGES = 4
"""Passages of the previous answer's articles added to a follow-up's pool when its search missed them."""
PREFER_LINEAR = 6.0
"""Added to the linear score of the previous answer's articles' sentences, before the reader chooses what to read:
a follow-up is usually about the article just quoted, so its best sentences must be read."""
PREFER_BONUS = 2.0
"""Log-odds added to the same sentences after the reader (whose margins would otherwise outweigh the first)."""
COVERED = 0.2
"""Share of a pointer-less, name-less question's weighted words that the previous turn and its articles must
explain for it to be read as a follow-up; below it the question is taken as a new subject."""

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_PERSON = frozenset("he him his she her hers himself herself".split())
_THING = frozenset("it its they them their theirs itself themselves".split())
_POSSESSIVE = frozenset("his its their theirs hers".split())
_DEMONSTRATIVE = frozenset("this these those".split())
# A question that opens like this continues the previous one ("And in 2004?", "What about profits?").
_CONNECTIVE = re.compile(
    r"^\s*(and|but|also|so|then|plus|or|what about|how about|what else|anything else|same for|as for|and what about)\b",
    re.IGNORECASE,
)
_QUESTION_WORDS = frozenset(
    "who whom whose what which when where why how is are was were do does did can could will "
    "would should has have had".split()
)
# Lower-case words inside a name.
_PARTICLES = frozenset("van von de der den du da di del della la le al bin ibn st".split())
# Words that open a sentence without naming anything ("Since when...", "According to...").
_OPENERS = frozenset(
    "since after following despite according under although though given apart besides among "
    "unlike like including".split()
)
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


@dataclass(frozen=True)
class Turn:
    """One earlier turn of a conversation: the question and, when known, what its answer cited.

    Attributes:
        question: the question as asked.
        read_as: how the engine read it (an answer's `read_as`), when it was read as a follow-up.
        doc_ids: the articles its answer cited, best first.
        quote: its answer's first quoted sentence.
        short_answer: the short answer the reader marked in that quote.
        number: its 1-based place in the conversation as given (set by `parse_history`; 0 when unknown).
    """

    question: str
    read_as: str | None = None
    doc_ids: tuple[str, ...] = ()
    quote: str | None = None
    short_answer: str | None = None
    number: int = 0

    @classmethod
    def from_answer(cls, answer: Answer) -> Turn:
        """The turn an answer closes (its citations say which articles and sentence it used)."""
        first = answer.citations[0] if answer.citations else None
        doc_ids = tuple(dict.fromkeys(c.doc_id for c in answer.citations))
        return cls(
            answer.question, answer.read_as, doc_ids, first.quote if first else None, first.answer if first else None
        )

    @property
    def subject_text(self) -> str:
        """What the turn was about, in words: how it was read (else its question)."""
        return self.read_as or self.question


@dataclass(frozen=True)
class FollowUp:
    """How a question is read in the light of the previous turn (see the module docstring).

    `follows` is the 1-based number, in the history given, of the turn it leans on; `reasons` say why it was
    judged to lean ("pronoun he", "connective", "no subject of its own").
    """

    question: str
    read_as: str
    follows: int
    subject: str
    carry: str
    prefer: tuple[str, ...]
    reasons: tuple[str, ...]


def parse_history(history: Any, max_chars: int = MAX_TURN_CHARS) -> tuple[Turn, ...]:
    """Validate a conversation's earlier turns, oldest first, and keep the last MAX_TURNS.

    Each turn may be a `Turn`, an `Answer`, a question string, or a mapping with `question` and optionally
    `read_as`, and either `answer` (an `Answer.to_dict()`) or its `citations` / `doc_ids` / `quote` /
    `short_answer` directly. Text longer than `max_chars` is cut.

    Raises:
        QuestionError: the history is not a list, or a turn has the wrong types, naming the turn.
    """
    if history is None:
        return ()
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise QuestionError(
            "history must be a list of earlier turns (each a question, or an object with "
            f'"question"), oldest first; got {type(history).__name__}'
        )
    total = len(history)
    kept = list(history)[-MAX_TURNS:]
    offset = total - len(kept)
    return tuple(_turn(item, offset + n, max_chars) for n, item in enumerate(kept, start=1))


def _text(value: Any, what: str, n: int, max_chars: int, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise QuestionError(f"history turn {n}: {what} must be text, got {type(value).__name__}")
    value = " ".join(value.split())[:max_chars]
    if required and not value:
        raise QuestionError(f"history turn {n}: the question is empty")
    return value or None


def _turn(item: Any, n: int, max_chars: int) -> Turn:
    if isinstance(item, Turn):
        item = {
            "question": item.question,
            "read_as": item.read_as,
            "doc_ids": list(item.doc_ids),
            "quote": item.quote,
            "short_answer": item.short_answer,
        }
    elif isinstance(item, Answer):
        t = Turn.from_answer(item)
        return _turn(t, n, max_chars)
    elif isinstance(item, str):
        item = {"question": item}
    if not isinstance(item, Mapping):
        raise QuestionError(
            f'history turn {n} must be a question or an object with "question", got {type(item).__name__}'
        )
    answer = item.get("answer")
    if answer is not None and not isinstance(answer, Mapping):
        raise QuestionError(
            f"history turn {n}: answer must be an object (an answer's JSON), got {type(answer).__name__}"
        )
    source = answer if answer is not None else item
    citations = source.get("citations") or []
    if not isinstance(citations, Sequence) or isinstance(citations, (str, bytes)):
        raise QuestionError(f"history turn {n}: citations must be a list")
    doc_ids = list(item.get("doc_ids") or [])
    quote = source.get("quote")
    short = source.get("short_answer")
    for c in citations[:MAX_TURNS]:
        if not isinstance(c, Mapping) or not isinstance(c.get("doc_id"), str):
            raise QuestionError(f'history turn {n}: each citation must be an object with a "doc_id"')
        doc_ids.append(c["doc_id"])
        if quote is None:
            quote = c.get("quote")
            short = short if short is not None else c.get("answer")
    if not all(isinstance(d, str) for d in doc_ids):
        raise QuestionError(f"history turn {n}: doc_ids must be article ids (text)")
    return Turn(
        question=_text(item.get("question"), "question", n, max_chars, required=True) or "",
        read_as=_text(
            item.get("read_as") if answer is None else (answer.get("read_as") or item.get("read_as")),
            "read_as",
            n,
            max_chars,
        ),
        doc_ids=tuple(dict.fromkeys(d[:max_chars] for d in doc_ids))[:MAX_TURNS],
        quote=_text(quote, "quote", n, max_chars),
        short_answer=_text(short, "short_answer", n, max_chars),
        number=n,
    )


# -- reading -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int

    @property
    def low(self) -> str:
        return self.text.lower()


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]


def _entities(text: str) -> list[str]:
    """Runs of capitalized words that name something ("ABN Amro", "Gordon Brown's"), in order, without a
    question's opening word, calendar words or capitalized stop words ("IT" reads as "it")."""
    toks = _tokens(text)
    out: list[str] = []
    run: list[_Token] = []

    def flush() -> None:
        if run:
            out.append(text[run[0].start : run[-1].end])
            run.clear()

    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if run and t.low in _PARTICLES and nxt is not None and nxt.text[0].isupper():
            run.append(t)  # "Theo van Gogh", "Luis de Guindos": one name
            continue
        name = t.text[0].isupper() or (t.text[0].isdigit() and not _YEAR.fullmatch(t.text) and run)
        plain = t.low.split("'")[0].split("’")[0]
        if (
            name
            and not (i == 0 and (plain in _QUESTION_WORDS or plain in _OPENERS))
            and plain not in STOP_WORDS
            and plain not in _CALENDAR
            and len(plain) > 1
        ):
            # Words joined by a space only (no comma or other mark between) belong to one name.
            if run and text[run[-1].end : t.start].strip():
                flush()
            run.append(t)
        else:
            flush()
    flush()
    return [_strip_possessive(e) for e in out]


def _strip_possessive(name: str) -> str:
    return re.sub(r"['’]s?$", "", name)


def _stems(text: str) -> set[str]:
    return {_stem(t.low) for t in _tokens(text) if t.low not in STOP_WORDS}


def _content(text: str) -> list[_Token]:
    return [t for t in _tokens(text) if t.low not in STOP_WORDS and t.low not in _QUESTION_WORDS]


def read_followup(
    question: str,
    history: Sequence[Turn],
    *,
    idf: Callable[[str], float] | None = None,
    article_text: Callable[[str], str | None] | None = None,
) -> FollowUp | None:
    """How to read `question` after `history` (oldest first), or None when it stands alone.

    Args:
        question: the new question (already checked).
        history: the earlier turns; only the last one is leaned on (its `read_as` already carries the turns before).
        idf: term -> inverse document frequency, to weigh which words of the question the previous article explains.
        article_text: doc id -> the article's text (None when unknown), to test whether the previous answer's
            article mentions the question's names and words.

    Returns:
        a FollowUp when the question leans on the previous turn: a pronoun, demonstrative or connective pointing back,
        or no subject of its own that the previous answer's article explains; None for a question with its own
        subject.
    """
    if not history:
        return None
    prev = history[-1]
    follows = prev.number or len(history)
    idf = idf or (lambda _w: 1.0)
    toks = _tokens(question)
    own = _entities(question)
    context_text = " ".join(filter(None, [prev.subject_text, prev.short_answer or "", prev.quote or ""]))
    articles = [t for t in (article_text(d) if article_text else None for d in prev.doc_ids[:2]) if t]
    known = _stems(" ".join([context_text, *articles]))
    new_names = [e for e in own if not (_stems(e) <= known)]

    reasons: list[str] = []
    pronoun = _pronoun(toks, own, question)
    if pronoun is not None:
        reasons.append(f"pronoun {pronoun.low}")
    if _CONNECTIVE.match(question):
        reasons.append("connective")
    demonstrative = next(
        (t for i, t in enumerate(toks[:-1]) if t.low in _DEMONSTRATIVE and toks[i + 1].low not in STOP_WORDS), None
    )
    if demonstrative is not None and not new_names:
        reasons.append(f"reference {demonstrative.low}")
    if not reasons:
        if new_names:
            return None
        words = _content(question)
        if not words:
            reasons.append("no subject of its own")
        else:
            # Without a pointer back, lean only when the previous turn and its articles explain enough of the
            # question's weighted words (COVERED): a question on a new subject uses words they do not.
            weights = {(_stem(t.low)): idf(_stem(t.low)) for t in words}
            total = sum(weights.values()) or 1.0
            covered = sum(w for s, w in weights.items() if s in known) / total
            if covered < COVERED:
                return None
            reasons.append("no subject of its own")

    subject = _subject(prev)
    read_as = _resolve(question, toks, pronoun, prev, subject)
    carry = " ".join(filter(None, [prev.subject_text, prev.short_answer or ""]))
    return FollowUp(question, read_as, follows, prev.subject_text, carry, prev.doc_ids, tuple(reasons))


def _pronoun(toks: Sequence[_Token], own: Sequence[str], question: str) -> _Token | None:
    """The first personal pronoun with no name before it in the question (a name before it is its antecedent)."""
    first_name = min((question.find(e) for e in own if question.find(e) >= 0), default=len(question))
    for t in toks:
        # "IT" and other capitals are names, not pronouns.
        if (t.low in _PERSON or t.low in _THING) and not (len(t.text) > 1 and t.text.isupper()):
            return t if t.start < first_name else None
    return None


def _subject(prev: Turn) -> list[str]:
    """What the previous turn was about: its names (from how it was read), else its first four content words."""
    names = _entities(prev.subject_text)
    if names:
        return list(dict.fromkeys(names))
    return [t.text for t in _content(prev.subject_text)][:4]


def _is_person_question(prev: Turn) -> bool:
    return bool(re.match(r"\s*(who|whom|whose)\b", prev.question, re.IGNORECASE))


def _referent(pronoun: _Token, prev: Turn) -> str | None:
    """The entity a pronoun points at: for he/she, the previous short answer when that asked "who", else the
    previous turn's first name of two words or more; for it/they, the previous turn's first name."""
    short = prev.short_answer if prev.short_answer and prev.short_answer[:1].isupper() else None
    names = _entities(prev.subject_text)
    if pronoun.low in _PERSON:
        if short and _is_person_question(prev):
            return _strip_possessive(short)
        people = [n for n in names if len(n.split()) >= 2]
        found = people or names
        return found[0] if found else None
    if names:
        return names[0]
    return short if short and not _is_person_question(prev) else None


def _resolve(question: str, toks: Sequence[_Token], pronoun: _Token | None, prev: Turn, subject: Sequence[str]) -> str:
    """The question as it is read: the pronoun replaced by its referent, a year swapped for an elliptical "and in
    2004?", or else the question followed by the previous turn's subject."""
    if pronoun is not None:
        referent = _referent(pronoun, prev)
        if referent:
            nxt = next((t for t in toks if t.start > pronoun.start), None)
            # "her" is possessive when a content word follows it directly ("her husband"), else an object.
            her_owns = (
                pronoun.low == "her"
                and nxt is not None
                and nxt.low not in STOP_WORDS
                and not question[pronoun.end : nxt.start].strip()
            )
            possessive = pronoun.low in _POSSESSIVE or her_owns
            word = f"{referent}'s" if possessive else referent
            return question[: pronoun.start] + word + question[pronoun.end :]
    years = _YEAR.findall(question)
    prev_years = _YEAR.findall(prev.subject_text)
    if _CONNECTIVE.match(question) and years and len(set(prev_years)) == 1 and len(_content(question)) <= 2:
        return _YEAR.sub(years[0], prev.subject_text, count=1)
    if not subject:
        return question
    mentioned = _stems(question)
    missing = [s for s in subject if not (_stems(s) <= mentioned)]
    if not missing:
        return question
    return f"{question.rstrip()} ({', '.join(missing)})"


def prefer_articles(candidates: Sequence[Candidate], doc_ids: Sequence[str], bonus: float) -> list[Candidate]:
    """Candidates with `bonus` added to the sentences of `doc_ids` (the previous answer's articles), best first."""
    preferred = set(doc_ids)
    if not preferred or bonus == 0:
        return list(candidates)
    moved = [replace(c, score=c.score + bonus) if c.sentence.doc_id in preferred else c for c in candidates]
    return sorted(moved, key=lambda c: -c.score)
