"""Collections of many articles made from a few: a .jsonl source repeated with deterministic changes, written line by
line (`write_synthetic_collection`; the articles of `rag bench --scale`)."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["SyntheticCollection", "write_synthetic_collection"]


# Sentence ends inside a paragraph; good enough to reorder them (the engine's own splitter is not needed here).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9£$])")
_PLAIN_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class SyntheticCollection:
    """A collection written by `write_synthetic_collection`.

    Attributes:
        folder: the folder of .jsonl files.
        articles: records written.
        files: .jsonl files written.
        source_articles: records of the source used (all of them when `articles` is larger).
        copies: passes over the source (copy numbers 0 .. copies - 1).
        marked: varied copies whose text still equalled an earlier one and got a closing line naming the copy.
    """

    folder: Path
    articles: int
    files: int
    source_articles: int
    copies: int
    marked: int = 0


def _source_records(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(line, record) for each usable line of a .jsonl file (a JSON object with a string "text"), read lazily."""
    with open(source, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("text"), str) and rec["text"].strip():
                yield line.rstrip("\n"), rec


def _vary(rec: dict[str, Any], copy: int, position: int) -> dict[str, Any]:
    """Copy `copy` (>= 1) of the record at `position`: paragraphs and the sentences in each reordered, a few pairs
    of adjacent plain words swapped, the copy number in the id and title. Seeded by (copy, position) alone, so the
    same collection comes out on every machine."""
    rng = random.Random(f"{copy}:{position}")  # a str seed is hashed with sha512, not with PYTHONHASHSEED
    paragraphs = rec["text"].split("\n\n")
    rng.shuffle(paragraphs)
    varied = []
    for para in paragraphs:
        sentences = _SENTENCE_END.split(para)
        rng.shuffle(sentences)
        varied.append(" ".join(sentences))
    words = "\n\n".join(varied).split(" ")
    plain = [
        i for i in range(len(words) - 1) if _PLAIN_WORD.fullmatch(words[i]) and _PLAIN_WORD.fullmatch(words[i + 1])
    ]
    for i in sorted(rng.sample(plain, min(3, len(plain)))):
        words[i], words[i + 1] = words[i + 1], words[i]
    out = {**rec, "text": " ".join(words)}
    if rec.get("id") is not None:
        out["id"] = f"{rec['id']}~{copy}"
    if isinstance(rec.get("title"), str) and rec["title"].strip():
        out["title"] = f"{rec['title']} (copy {copy})"
    return out


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def write_synthetic_collection(source: Path, folder: Path, n: int, *, per_file: int = 5000) -> SyntheticCollection:
    """Write n articles made from a .jsonl source into folder/articles-0000.jsonl, ..., line by line.

    The first pass over the source writes its records unchanged (copy 0), the first n when n is smaller; further
    passes write varied copies (`_vary`) until n are written. No article is held in memory, only an 8-byte hash
    of each text written, so that a copy whose variation happens to repeat an earlier text can be told apart.
    Files hold `per_file` articles each, which keeps them under the engine's default max_file_mb.

    Args:
        source: a .jsonl file, one article per line (a JSON object with "text"; "id" and "title" are changed in
            copies when present).
        folder: where to write (created; existing articles-*.jsonl files in it are replaced).
        n: articles to write (>= 1).
        per_file: articles per file.

    Returns:
        SyntheticCollection.

    Raises:
        SourceError: the source is not a .jsonl file or has no usable record.
    """
    from rag.errors import SourceError

    source = Path(source)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not source.is_file() or source.suffix != ".jsonl":
        raise SourceError(f"{source} is not a .jsonl file of articles; pass --scale-source with one")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("articles-*.jsonl"):
        old.unlink()
    seen: set[bytes] = set()
    written = marked = source_articles = copy = 0
    out: TextIO | None = None
    try:
        while written < n:
            position = -1
            for position, (line, rec) in enumerate(_source_records(source)):
                if written == n:
                    break
                if copy == 0:
                    digest = _digest(rec["text"])
                else:
                    rec = _vary(rec, copy, position)
                    base, digest, tag = rec["text"], _digest(rec["text"]), 0
                    while digest in seen:  # a short article has few orders: the copy then says which it is
                        tag += 1
                        rec["text"] = f"{base}\n\n(Copy {copy}-{tag}.)"
                        digest = _digest(rec["text"])
                    marked += tag > 0
                    line = json.dumps(rec, ensure_ascii=False)
                seen.add(digest)
                if written % per_file == 0:
                    if out:
                        out.close()
                    out = open(folder / f"articles-{written // per_file:04d}.jsonl", "w", encoding="utf-8")
                assert out is not None  # opened at the first article
                out.write(line + "\n")
                written += 1
            if position < 0:
                raise SourceError(f"{source} has no usable article (a JSON object with a string 'text' per line)")
            if copy == 0:
                source_articles = written
            copy += 1
    finally:
        if out:
            out.close()
    return SyntheticCollection(folder, written, (written - 1) // per_file + 1, source_articles, copy, marked)
