"""Embedder Protocol and the sentence-transformers embedder (offline: the hub is never contacted)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from rag.config import offline_env, resolve_model_path
from rag.errors import ConfigError

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

__all__ = ["Embedder", "SentenceTransformerEmbedder", "make_embedder", "resolve_device"]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors; queries and documents may be encoded differently.

    Attributes:
        name: the model name recorded in the manifest.
        dimension: vector length.
        max_tokens: the longest input (in tokens, without special tokens) the model reads in full.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the model's own tokenizer, special tokens excluded."""
        ...

    def embed_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Return float32 array of shape (len(texts), dimension), each row L2-normalized."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Return a float32 vector of shape (dimension,), L2-normalized."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, lazily, once.

    Args:
        model: model name or folder; "all-MiniLM-L6-v2" resolves to the bundled copy.
        backend: "torch", "onnx" or "onnx-int8" (on a GPU the model runs in PyTorch whatever the backend).
        device: "cpu" or "cuda" (see `resolve_device`).
        query_cache: how many recent query vectors to keep (repeated questions skip the model).

    Example:
        >>> emb = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        >>> emb.embed_query("what would lift the pause?").shape
        (384,)
    """

    def __init__(self, model: str, backend: str = "torch", query_cache: int = 1024, device: str = "cpu"):
        self.name = model
        # On a GPU the model runs in PyTorch: the ONNX exports are CPU builds, and the vectors match either way.
        self.backend = backend
        self.device = device
        self.path = resolve_model_path(model)
        self._model = None
        # The fast tokenizer read from tokenizer.json, or the loaded model's own when the folder has none.
        self._tokenizer: Tokenizer | PreTrainedTokenizerBase | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = query_cache
        self.calls = 0  # texts sent to the model; tests use it to prove skipped re-embedding
        self._dimension: int | None = None
        self._max_tokens: int | None = None
        self._read_local_config()

    def _read_local_config(self) -> None:
        folder = Path(self.path)
        if not folder.is_dir():
            return
        import json

        try:
            cfg = json.loads((folder / "config.json").read_text())
            self._dimension = int(cfg.get("hidden_size")) if cfg.get("hidden_size") else None
            sb = json.loads((folder / "sentence_bert_config.json").read_text())
            self._max_tokens = int(sb["max_seq_length"]) - 2
            pooling = folder / "1_Pooling" / "config.json"
            if pooling.exists():
                self._dimension = int(json.loads(pooling.read_text())["word_embedding_dimension"])
        except (OSError, ValueError, KeyError, TypeError):
            self._dimension = self._max_tokens = None

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        offline_env()
        if self.backend != "torch" and self.device == "cpu":
            # onnxruntime only: a process that merely asks questions never imports PyTorch.
            from rag.index.onnx_export import load_onnx_encoder

            return load_onnx_encoder(self.path, self.backend)
        try:
            import torch

            if self.device == "cpu":
                torch.set_num_threads(max(1, os.cpu_count() or 1))
        except ImportError:  # pragma: no cover
            pass
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        kwargs: dict = {"device": self.device}
        if not Path(self.path).is_dir():
            kwargs["local_files_only"] = True
        try:
            return SentenceTransformer(self.path, **kwargs)
        except Exception as exc:
            raise ConfigError(
                f"cannot load embedding model {self.name!r} from {self.path}: {type(exc).__name__}: {exc}. "
                "Pass --model with a local sentence-transformers folder (nothing is downloaded)."
            ) from None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
            self._dimension = int(dim())
        return self._dimension

    @property
    def max_tokens(self) -> int:
        if self._max_tokens is None:
            self._max_tokens = int(self.model.max_seq_length) - 2
        return self._max_tokens

    def _tok(self):
        if self._tokenizer is None:
            tj = Path(self.path) / "tokenizer.json"
            if tj.exists():
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(tj))
                tok.no_truncation()
                tok.no_padding()
                self._tokenizer = tok
            else:
                self._tokenizer = self.model.tokenizer
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        tok = self._tok()
        if hasattr(tok, "encode") and hasattr(tok, "no_truncation"):
            return len(tok.encode(text, add_special_tokens=False).ids)
        return len(tok.tokenize(text))

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        tok = self._tok()
        if hasattr(tok, "encode_batch"):
            return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]
        return [self.count_tokens(t) for t in texts]

    def embed_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        encode = getattr(model, "encode_document", model.encode)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Sorting by length keeps padding low; blocks keep progress reporting and memory bounded.
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        block = max(batch_size * 8, 256)
        for i in range(0, len(order), block):
            idx = order[i : i + block]
            vecs = encode(
                [texts[j] for j in idx],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = np.asarray(vecs, dtype=np.float32)
            self.calls += len(idx)
            if progress:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        model = self.model
        encode = getattr(model, "encode_query", model.encode)
        vec = np.asarray(
            encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0],
            dtype=np.float32,
        )
        vec.setflags(write=False)
        self.calls += 1
        with self._lock:
            self._cache[text] = vec
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vec


_SHARED: dict[tuple[str, str, str], SentenceTransformerEmbedder] = {}
_SHARED_LOCK = threading.Lock()


def make_embedder(model: str, backend: str = "torch", device: str = "cpu") -> SentenceTransformerEmbedder:
    """One embedder per (model, backend, device) per process, so the model is loaded once.

    Raises:
        ConfigError: device "cuda" and no GPU PyTorch can use.
    """
    device = resolve_device(device)
    key = (model, backend, device)
    with _SHARED_LOCK:
        emb = _SHARED.get(key)
        if emb is None:
            emb = _SHARED[key] = SentenceTransformerEmbedder(model, backend, device=device)
        return emb


def resolve_device(device: str) -> str:
    """ "cpu", "cuda" or "auto" -> the device to run on ("cpu" or "cuda").

    Raises:
        ConfigError: "cuda" was asked for and PyTorch sees no GPU (or PyTorch is a CPU-only build).
    """
    if device in ("", "cpu"):
        return "cpu"
    if device not in ("cuda", "auto"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {device!r}")
    try:
        import torch

        available = bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        available = False
    if available:
        return "cuda"
    if device == "cuda":
        raise ConfigError(
            "--device cuda: PyTorch sees no GPU here (torch.cuda.is_available() is False); use --device cpu or auto, "
            "or install a CUDA build of PyTorch on a machine with a GPU"
        )
    return "cpu"
