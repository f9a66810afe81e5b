"""The tutorial baseline: langchain's splitter, a plain PyTorch SentenceTransformer and a faiss.IndexFlatIP, timed
from the files to the saved index, and how many times faster each other configuration's build is."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.bench.configs import TUTORIAL, TUTORIAL_CHUNK_TOKENS
from rag.evaluation.bench.memory import RssSampler, folder_mb
from rag.evaluation.bench.report import get_path

__all__ = ["bench_tutorial", "build_vs_tutorial"]


def _load_tutorial_model(model: str) -> Any:
    """The plain PyTorch SentenceTransformer a tutorial loads, from the local copy of `model` (never a hub)."""
    from rag.config import resolve_model_path

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # The splitter measures whole articles first, and the tokenizer warns that they are longer than the model's limit;
    # the loading bar would cut into the progress lines.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(model)
    kwargs: dict[str, Any] = {} if Path(path).is_dir() else {"local_files_only": True}
    return SentenceTransformer(path, device="cpu", **kwargs)


def bench_tutorial(
    source: Path,
    work: Path,
    *,
    settings: Any = None,
    model: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Build the tutorial stack on the articles, timed from reading the files to the saved FAISS index.

    Read with `load_documents` (so both stacks see the same texts), split by langchain's
    RecursiveCharacterTextSplitter into 200-token chunks of the model's tokenizer with no overlap and the default
    separators, encoded by `SentenceTransformer.encode(chunks, batch_size=32, normalize_embeddings=True)`, added to
    a faiss.IndexFlatIP and written with faiss.write_index. As for the other configurations, the model is loaded and
    warmed up before the clock starts.

    Args:
        source: the copied articles (a file or folder).
        work: a private folder; the index goes to work/tutorial-index/index.faiss.
        settings: base settings; only the model is taken from them (the tutorial chunks its own way).
        model: a ready SentenceTransformer, or anything with `.encode(texts, batch_size=, normalize_embeddings=)`
            and `.tokenizer.tokenize(text)` (tests pass a fake); default: the settings' model, with PyTorch on CPU.

    Returns:
        A JSON-ready dict with the figures of `bench_config` that apply (build, index disk size, model load); it
        has no query, incremental or cold-start figures, since the stack has no answer path.
    """
    import faiss
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.config import Settings
    from rag.ingest.files import load_documents

    settings = settings or Settings.load()
    out: dict[str, Any] = {
        "config": TUTORIAL,
        "backend": TUTORIAL,
        "store": "faiss",
        "settings": {
            "model": settings.model,
            "chunk_size": TUTORIAL_CHUNK_TOKENS,
            "chunk_overlap": 0,
            "splitter": "RecursiveCharacterTextSplitter",
            "encoder": "sentence-transformers",
        },
    }
    t0 = time.perf_counter()
    model = model or _load_tutorial_model(settings.model)
    model.encode(["warm up the embedding model before timing"] * 4, batch_size=32, normalize_embeddings=True)
    out["model_load_s"] = round(time.perf_counter() - t0, 3)
    torch = sys.modules.get("torch")
    if torch is not None:  # process-wide: an earlier torch configuration (which uses every core) sets it here too
        out["torch_threads"] = torch.get_num_threads()

    tokenizer = model.tokenizer
    # Exactly what RecursiveCharacterTextSplitter.from_huggingface_tokenizer builds; spelled out because that
    # constructor accepts only a transformers tokenizer, and tests pass a fake one.
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=TUTORIAL_CHUNK_TOKENS, chunk_overlap=0, length_function=lambda text: len(tokenizer.tokenize(text))
    )
    folder = work / "tutorial-index"
    folder.mkdir(parents=True, exist_ok=True)
    log(f"[{TUTORIAL}] building {source}")
    with RssSampler() as rss:
        t0 = time.perf_counter()
        docs = load_documents(source).documents
        chunks = [chunk for doc in docs for chunk in splitter.split_text(doc.text)]
        vectors = model.encode(chunks, batch_size=32, normalize_embeddings=True)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        faiss.write_index(index, str(folder / "index.faiss"))
        seconds = time.perf_counter() - t0
    tokens = sum(len(tokenizer.tokenize(c)) for c in chunks)  # counted after the clock stopped
    out["build"] = {
        "documents": len(docs),
        "chunks": len(chunks),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "documents_per_s": round(len(docs) / seconds, 2),
        "chunks_per_s": round(len(chunks) / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_mb": round(rss.peak_mb, 1),
        "rss_before_mb": round(rss.start_mb, 1),
    }
    out["index"] = {
        "disk_mb": folder_mb(folder),
        "store": {"index_type": "IndexFlatIP", "vectors": int(index.ntotal), "dimension": int(index.d)},
        "holds": "chunk vectors only (no texts, offsets, sentence vectors or lexical index)",
    }
    return out


def build_vs_tutorial(configs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """How many times faster each configuration's full build is than the tutorial's: {config: tutorial s / its s}.

    Empty when no configuration is the tutorial; the tutorial's own entry is 1.0.
    """
    tutorial = next((c for c in configs if c.get("backend") == TUTORIAL), None)
    base = get_path(tutorial, ("build", "seconds"))
    if not isinstance(base, (int, float)) or base <= 0:
        return {}
    return {
        c["config"]: round(base / s, 2)
        for c in configs
        if isinstance(s := get_path(c, ("build", "seconds")), (int, float)) and s > 0
    }
