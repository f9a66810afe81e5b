"""Text -> Sentences with exact character offsets (pysbd, one line at a time)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rag.types import Sentence

if TYPE_CHECKING:
    import pysbd

__all__ = ["split_sentences"]

# Sentences longer than this are cut at a space so a quote stays readable and embeddable.
MAX_SENTENCE_CHARS = 1000


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    import sys

    import pysbd

    # pysbd builds a regular expression per abbreviation it meets and per rule, thousands in all: more than the
    # `re` module's own cache of 512 keeps, so most calls compiled their patterns again (over half of its time).
    # Its modules get the same functions over a cache large enough to hold them; the sentences are unchanged.
    for name, module in list(sys.modules.items()):
        if name.startswith("pysbd") and getattr(module, "re", None) is re:
            vars(module)["re"] = _CACHED_RE
    return pysbd.Segmenter(language="en", clean=False, char_span=False)


class _CachedPatterns:
    """The subset of the `re` module's interface pysbd calls, compiling each pattern once."""

    def __init__(self, size: int):
        self.compile = lru_cache(maxsize=size)(re.compile)

    def __getattr__(self, name: str) -> Any:  # flags, escape, error and the rest come from `re` itself
        return getattr(re, name)

    def sub(self, pattern, repl, string, count=0, flags=0):
        return self.compile(pattern, flags).sub(repl, string, count)

    def subn(self, pattern, repl, string, count=0, flags=0):
        return self.compile(pattern, flags).subn(repl, string, count)

    def search(self, pattern, string, flags=0):
        return self.compile(pattern, flags).search(string)

    def match(self, pattern, string, flags=0):
        return self.compile(pattern, flags).match(string)

    def fullmatch(self, pattern, string, flags=0):
        return self.compile(pattern, flags).fullmatch(string)

    def findall(self, pattern, string, flags=0):
        return self.compile(pattern, flags).findall(string)

    def finditer(self, pattern, string, flags=0):
        return self.compile(pattern, flags).finditer(string)

    def split(self, pattern, string, maxsplit=0, flags=0):
        return self.compile(pattern, flags).split(string, maxsplit)


_CACHED_RE = _CachedPatterns(size=32768)


def split_sentences(text: str, doc_id: str = "", start: int = 0, end: int | None = None) -> list[Sentence]:
    """Split `text[start:end]` into sentences; a line break always ends a sentence.

    Returns:
        Sentences in order, stripped of surrounding whitespace, with offsets into `text`.
    """
    end = len(text) if end is None else end
    seg = _segmenter()
    out: list[Sentence] = []
    line_start = start
    while line_start < end:
        nl = text.find("\n", line_start, end)
        line_end = end if nl < 0 else nl
        line = text[line_start:line_end]
        if line.strip():
            cursor = line_start
            for piece in _pieces(seg, line):
                piece = piece.strip()
                if not piece:
                    continue
                s = text.find(piece, cursor, line_end)
                if s < 0:  # pysbd altered the text; fall back to the rest of the line
                    s = cursor
                    while s < line_end and text[s].isspace():
                        s += 1
                    piece = text[s:line_end].strip()
                    if not piece:
                        break
                e = s + len(piece)
                _append(out, text, doc_id, s, e)
                cursor = e
                if cursor >= line_end:
                    break
        line_start = line_end + 1
    return out


def _pieces(seg: pysbd.Segmenter, line: str) -> list[str]:
    """What `seg.segment(line)` returns, without its offset pass.

    pysbd finds each sentence again with a regular expression built from the sentence's own text, compiled once
    per sentence: a third of its time, for offsets this module works out itself. This is the same search as plain
    string matching: the sentence, then any whitespace, the first such match ending after the previous one.
    """
    sentences = seg.processor(line).process()
    if not all(sentences):
        return seg.segment(line)
    out: list[str] = []
    prior = 0
    for sent in sentences:
        pos = 0
        while (i := line.find(sent, pos)) >= 0:
            e = i + len(sent)
            while e < len(line) and line[e].isspace():
                e += 1
            if e > prior:
                out.append(line[i:e])
                prior = e
                break
            pos = e
    return out


def _append(out: list[Sentence], text: str, doc_id: str, s: int, e: int) -> None:
    while e - s > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", s + 1, s + MAX_SENTENCE_CHARS)
        cut = cut if cut > s else s + MAX_SENTENCE_CHARS
        out.append(Sentence(doc_id, s, cut, text[s:cut]))
        s = cut
        while s < e and text[s].isspace():
            s += 1
    if e > s:
        out.append(Sentence(doc_id, s, e, text[s:e]))
