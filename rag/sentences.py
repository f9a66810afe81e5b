"""Text -> Sentences with exact character offsets (pysbd, one line at a time)."""

from __future__ import annotations

from functools import lru_cache

from .types import Sentence

__all__ = ["split_sentences"]

# Sentences longer than this are cut at a space so a quote stays readable and embeddable.
MAX_SENTENCE_CHARS = 1000


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=False)


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
            for piece in seg.segment(line):
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
