"""Document -> Chunks sized in model tokens, each with exact character offsets into the document.

The splitter comes from langchain-text-splitters; its `start_index` is not used because it points at the
wrong occurrence when text repeats. Offsets are found here by scanning forward from the previous chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rag.errors import ConfigError
from rag.types import Chunk, Document

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

__all__ = ["chunk_document", "make_splitter", "locate_spans"]

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


def make_splitter(
    chunk_size: int, chunk_overlap: int, token_len: Callable[[str], int]
) -> RecursiveCharacterTextSplitter:
    """A RecursiveCharacterTextSplitter measuring length with `token_len` (tokens, not characters)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        length_function=token_len,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def locate_spans(
    text: str, pieces: list[str], overlap_fits: Callable[[int, int, int], bool] | None = None
) -> list[tuple[int, int]]:
    """Character spans of consecutive `pieces` of `text`, scanning forward so repeats map to the right copy.

    A piece starts after the previous piece's start and no later than the first non-space character after the
    previous piece's end (the splitter drops only whitespace). Where several positions qualify (text that repeats
    itself), the earliest one for which `overlap_fits(start, prev_end, len(previous piece))` holds is taken, else the
    earliest one.

    Raises:
        ValueError: a piece is not found, which would mean the splitter rewrote the text.
    """
    spans: list[tuple[int, int]] = []
    for piece in pieces:
        if not spans:
            start = text.find(piece)
        else:
            prev_start, prev_end = spans[-1]
            limit = prev_end
            while limit < len(text) and text[limit].isspace():
                limit += 1
            first = start = -1
            pos = text.find(piece, prev_start + 1, limit + len(piece))
            while 0 <= pos <= limit:
                first = pos if first < 0 else first
                if pos >= prev_end or overlap_fits is None or overlap_fits(pos, prev_end, prev_end - prev_start):
                    start = pos
                    break
                pos = text.find(piece, pos + 1, limit + len(piece))
            if start < 0:
                start = first if first >= 0 else text.find(piece, prev_start + 1)
        if start < 0:
            raise ValueError(f"piece not found in text after the previous one: {piece[:60]!r}")
        spans.append((start, start + len(piece)))
    return spans


def chunk_document(
    doc: Document,
    chunk_size: int,
    chunk_overlap: int,
    token_len: Callable[[str], int],
    max_tokens: int | None = None,
    splitter: RecursiveCharacterTextSplitter | None = None,
) -> list[Chunk]:
    """Split a document into overlapping chunks of at most `chunk_size` tokens.

    Args:
        doc: the document; chunks index into `doc.text`.
        chunk_size, chunk_overlap: in tokens of the embedding model's tokenizer.
        token_len: counts tokens of a string (without special tokens).
        max_tokens: the model's hard limit; no chunk is longer (a chunk the splitter could not
            bring under it is cut by characters).
        splitter: a prebuilt splitter to reuse across documents.

    Returns:
        Chunks in document order with `doc.text[c.start:c.end] == c.text`.
    """
    if max_tokens is not None and chunk_size > max_tokens:
        raise ConfigError(
            f"chunk_size {chunk_size} exceeds the model's limit of {max_tokens} tokens; lower --chunk-size"
        )
    splitter = splitter or make_splitter(chunk_size, chunk_overlap, token_len)
    pieces = [p for p in splitter.split_text(doc.text) if p.strip()]
    text = doc.text

    def overlap_fits(s: int, e: int, prev_length: int) -> bool:
        # The splitter carries at most chunk_overlap tokens over; bounding characters in proportion too keeps
        # chunks of self-repeating text advancing through the document instead of piling up at its start.
        return e - s <= -(-prev_length * chunk_overlap // chunk_size) and token_len(text[s:e]) <= chunk_overlap

    spans = locate_spans(text, pieces, overlap_fits)
    limit = max_tokens or chunk_size
    out: list[Chunk] = []
    for start, end in spans:
        for s, e in _enforce_limit(doc.text, start, end, limit, token_len):
            out.append(Chunk(doc.id, len(out), s, e, doc.text[s:e]))
    return out


def _enforce_limit(
    text: str, start: int, end: int, limit: int, token_len: Callable[[str], int]
) -> Iterator[tuple[int, int]]:
    """Cut a span in halves until each part fits the model (token counts are not additive at joins)."""
    if token_len(text[start:end]) <= limit or end - start <= 1:
        yield start, end
        return
    mid = text.rfind(" ", start + 1, (start + end) // 2 + 1)
    if mid <= start:
        mid = (start + end) // 2
    yield from _enforce_limit(text, start, mid, limit, token_len)
    s2 = mid
    while s2 < end and text[s2].isspace():
        s2 += 1
    if s2 < end:
        yield from _enforce_limit(text, s2, end, limit, token_len)
