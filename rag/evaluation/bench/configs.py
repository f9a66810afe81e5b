"""What `rag bench` runs: the configurations it compares, the latency questions, where the articles and seeds are,
and an embedder that shares its document vectors between configurations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_SOURCE",
    "QUESTIONS",
    "SEEDS",
    "TUTORIAL",
    "TUTORIAL_CHUNK_TOKENS",
    "BenchConfig",
    "SharedVectors",
]


ROOT = Path(__file__).resolve().parents[3]  # the repository (this file: rag/evaluation/bench/configs.py)
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "bbc_news" / "articles.jsonl"
SEEDS = ROOT / "seeds"
TUTORIAL = "tutorial"  # the --compare name of the tutorial baseline (bench_tutorial)
TUTORIAL_CHUNK_TOKENS = 200

# A fixed question list for latency: news-style questions over the five BBC topics, plus a few unanswerable ones.
QUESTIONS = (
    "Which company reported a rise in quarterly profits?",
    "What did the central bank decide about interest rates?",
    "How much did oil prices rise?",
    "Why did the dollar fall against the euro?",
    "Which airline announced job cuts?",
    "What happened to house prices in the UK?",
    "Who won the best actor award?",
    "Which film topped the box office?",
    "What did the band say about their new album?",
    "Who will host the awards ceremony?",
    "Which musician died this week?",
    "What did the prime minister say about the election date?",
    "How will the new law on identity cards work?",
    "What did the Conservatives promise on taxes?",
    "Why did the minister resign?",
    "What is the government's plan for asylum seekers?",
    "Who won the Australian Open?",
    "How did England play against Wales in the Six Nations?",
    "Which football club sacked its manager?",
    "When will the athlete return from injury?",
    "What did the coach say after the defeat?",
    "How many mobile phones were sold last year?",
    "What security flaw was found in the web browser?",
    "How fast is the new broadband service?",
    "What did the games console maker announce?",
    "How are spam e-mails being tackled?",
    "Who is the chief executive of the software company?",
    "What did the survey find about internet use?",
    "What is the boiling point of mercury?",
    "How do volcanoes form on Mars?",
)


@dataclass(frozen=True)
class BenchConfig:
    """One configuration to measure.

    Attributes:
        backend: embedding backend ("torch", "onnx", "onnx-int8"), or "tutorial" for the tutorial baseline.
        store: vector store kind ("faiss", "milvus").
        milvus_uri: the Milvus server or Lite path for store "milvus" ("": Lite inside the index folder).
        label: name in the report (default "<backend>", "<backend>/<store>", or "<backend>/milvus-server").
    """

    backend: str = "torch"
    store: str = "faiss"
    milvus_uri: str = ""
    label: str = ""

    @property
    def is_tutorial(self) -> bool:
        return self.backend == TUTORIAL

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.store == "faiss":
            return self.backend
        server = "://" in self.milvus_uri
        return f"{self.backend}/{self.store}-server" if server else f"{self.backend}/{self.store}"

    @classmethod
    def parse(cls, text: str, store: str = "faiss") -> BenchConfig:
        """ "onnx-int8", "onnx-int8/milvus" or "onnx-int8/milvus@http://127.0.0.1:19530" -> BenchConfig."""
        backend, _, rest = text.strip().partition("/")
        kind, _, uri = rest.partition("@")
        return cls(backend=backend, store=kind or store, milvus_uri=uri)


class SharedVectors:
    """An embedder that keeps every document vector it computes, so that builds of the same articles in several
    configurations embed each text once; queries are embedded afresh, as in any build.

    Args:
        inner: the embedder that computes vectors (name, dimension and everything else are its own).
    """

    def __init__(self, inner: Any):
        self._inner = inner
        self._vectors: dict[str, Any] = {}
        self.seconds = 0.0  # how long filling it took (set by whoever fills it)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_documents(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self._inner.embed_documents(missing, batch_size)))
        if progress:
            progress(len(texts))
        if not texts:
            return np.zeros((0, self._inner.dimension), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)
