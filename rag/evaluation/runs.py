"""What every evaluation run needs: its data read, a throwaway index built from it, a work folder and a progress bar."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import SourceError

if TYPE_CHECKING:
    from tqdm import tqdm

    from rag.answer.engine import Index
    from rag.config import Settings
    from rag.index.build import ProgressFn
    from rag.index.embedding import Embedder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SourceError(f"{path} is missing; a SQuAD folder holds articles.jsonl and questions.jsonl")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}:{n} is not valid JSON ({exc.msg}); fix or remove that line") from None
    return out


def build_collection(
    docs: dict[str, tuple[str, str]],
    work: Path,
    settings: Settings,
    embedder: Embedder | None,
    progress: ProgressFn | None,
) -> Index:
    from rag.answer.engine import open_index
    from rag.index.build import build_index

    src = work / "articles"
    src.mkdir(parents=True, exist_ok=True)
    with open(src / "articles.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    build_index(src, work / "index", settings, embedder=embedder, progress=progress)
    return open_index(work / "index", settings=settings, embedder=embedder)


@contextmanager
def work_folder(work: str | Path | None) -> Iterator[Path]:
    """The given work folder (kept, so its index is reused), or a temporary one removed afterwards."""
    if work is not None:
        yield Path(work)
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        yield Path(tmp)


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="q", file=sys.stderr, disable=not enabled, leave=False)
