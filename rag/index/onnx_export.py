"""ONNX copies of a local sentence-transformers model: exported once into a cache folder, run with onnxruntime.

The export (PyTorch -> ONNX, then int8 dynamic quantization) runs once per model and machine, from the local
model folder only. Encoding then needs onnxruntime, tokenizers and numpy, not PyTorch, so a fresh process can
answer its first question without paying for the PyTorch import.

Encoding repeats the sentence-transformers pipeline of the model (Transformer -> Pooling -> Normalize): the same
tokenizer file, the same truncation length, the same pooling; `tests/index/test_embedding.py` checks that the vectors
match the PyTorch ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from rag.errors import ConfigError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import onnxruntime as ort
    from transformers import PreTrainedModel

__all__ = [
    "BACKEND_FILES",
    "EXPORT_VERSION",
    "OnnxEncoder",
    "cache_root",
    "ensure_export",
    "export_dir",
    "int8_weights",
    "load_onnx_encoder",
    "weights_for_this_cpu",
]

EXPORT_VERSION = 3
BACKEND_FILES = {"onnx": "model.onnx", "onnx-int8": "model_qint8.onnx"}
_INFO = "export.json"
_POOLING = ("mean", "cls", "max")


def cache_root() -> Path:
    """Where exports live: RAG_ONNX_CACHE, else $XDG_CACHE_HOME/rag-articles/onnx, else ~/.cache/rag-articles/onnx."""
    explicit = os.environ.get("RAG_ONNX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-articles" / "onnx"


def _model_key(model_path: Path) -> str:
    """Changes whenever the model's weights or tokenizer change (size and mtime; hashing 90 MB per start is too slow)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"v{EXPORT_VERSION}\x00{model_path.resolve()}\x00{int8_weights()}".encode())
    for name in ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "config.json", "modules.json"):
        p = model_path / name
        if p.exists():
            st = p.stat()
            h.update(f"\x00{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def export_dir(model_path: str | Path) -> Path:
    """The cache folder that holds (or will hold) the exports of the model at `model_path`."""
    model_path = Path(model_path)
    return cache_root() / f"{model_path.name or 'model'}-{_model_key(model_path)}"


def _pipeline_config(model_path: Path) -> dict:
    """Read the parts of the sentence-transformers pipeline the ONNX encoder must reproduce."""
    try:
        modules = json.loads((model_path / "modules.json").read_text())
        sb = json.loads((model_path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{model_path} is not a local sentence-transformers folder ({type(exc).__name__}); "
            "the onnx backends need one: use --backend torch"
        ) from None
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    pooling_mode = "mean"
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is not None:
        cfg = json.loads((model_path / pooling["path"] / "config.json").read_text())
        modes = [m for m in _POOLING if cfg.get(f"pooling_mode_{m}_tokens" if m != "cls" else "pooling_mode_cls_token")]
        if len(modes) != 1:
            raise ConfigError(f"{model_path}: pooling {cfg} is not supported by the onnx backends; use --backend torch")
        pooling_mode = modes[0]
    extra = [t for t in types if t not in ("Transformer", "Pooling", "Normalize")]
    if types[:1] != ["Transformer"] or extra:
        raise ConfigError(f"{model_path}: modules {types} are not supported by the onnx backends; use --backend torch")
    return {
        "max_seq_length": int(sb.get("max_seq_length", 512)),
        "do_lower_case": bool(sb.get("do_lower_case", False)),
        "pooling": pooling_mode,
        "normalize": "Normalize" in types,
    }


_EXPORT_LOCK = threading.Lock()


def ensure_export(model_path: str | Path, backend: str) -> Path:
    """The ONNX file for `backend`, exporting the model first when the cache lacks it.

    Args:
        model_path: a local sentence-transformers folder (the bundled model resolves to one).
        backend: "onnx" (fp32) or "onnx-int8" (dynamically quantized weights).

    Returns:
        Path of the .onnx file inside export_dir(model_path).
    """
    if backend not in BACKEND_FILES:
        raise ConfigError(f"unknown onnx backend {backend!r}; choose one of {', '.join(BACKEND_FILES)}")
    model_path = Path(model_path)
    if not model_path.is_dir():
        raise ConfigError(
            f"the onnx backends need a local model folder, and {model_path} is not one; use --backend torch"
        )
    folder = export_dir(model_path)
    target = folder / BACKEND_FILES[backend]
    if target.is_file() and (folder / _INFO).is_file():
        return target
    _pipeline_config(model_path)  # refuse an unsupported model before touching the cache
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with _EXPORT_LOCK, FileLock(str(folder) + ".lock", timeout=1800):
        if not (target.is_file() and (folder / _INFO).is_file()):
            _export(model_path, folder)
    return target


def _export(model_path: Path, folder: Path) -> None:
    """Write both ONNX files into a temporary folder beside `folder`, then rename it into place."""
    config = _pipeline_config(model_path)
    work = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        _export_fp32(model_path, work / BACKEND_FILES["onnx"])
        weights = int8_weights()
        _quantize_int8(work / BACKEND_FILES["onnx"], work / BACKEND_FILES["onnx-int8"], signed=weights == "s8")
        info = {
            "export_version": EXPORT_VERSION,
            "model_path": str(model_path.resolve()),
            **config,
            "int8_weights": weights,
            "files": {b: f for b, f in BACKEND_FILES.items()},
        }
        (work / _INFO).write_text(json.dumps(info, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _export_fp32(model_path: Path, out: Path) -> None:
    from rag.config import offline_env

    offline_env()
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are hard dependencies
        raise ConfigError(
            f"exporting to ONNX needs PyTorch and sentence-transformers ({exc}); use --backend torch"
        ) from None

    st = SentenceTransformer(str(model_path), device="cpu")
    # torch types a submodule reached by attribute as `Tensor | Module`: the first module is the model's Transformer,
    # and its auto_model the Hugging Face model.
    hf = cast("PreTrainedModel", st[0].auto_model).eval()
    if hasattr(hf, "set_attn_implementation"):
        # The eager attention graph is plain MatMul/Softmax, which onnxruntime fuses and quantizes; the SDPA
        # export traces into a slower graph here.
        hf.set_attn_implementation("eager")
    tokenizer = st.tokenizer
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class _TokenEmbeddings(torch.nn.Module):
        """The transformer's last hidden state: pooling happens outside, in numpy, as sentence-transformers does."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    enc = tokenizer(["a sample sentence for the export", "short"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["token_embeddings"]}
    with torch.inference_mode():
        torch.onnx.export(
            _TokenEmbeddings(hf),
            tuple(enc[n] for n in names),
            str(out),
            dynamo=False,
            opset_version=17,
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
        )


@lru_cache(maxsize=1)
def int8_weights() -> str:
    """ "s8" where the CPU has VNNI (AVX-512 VNNI or AVX-VNNI), else "u8".

    onnxruntime multiplies int8 matrices fastest as unsigned activations times signed weights on VNNI (measured
    here: 14,900 against 8,200 tokens/s for MiniLM on sentences, same agreement with PyTorch); without VNNI that
    product can saturate, so AVX2 machines keep unsigned weights.
    Read once per process: every embedder load and the reader ask it, and the CPU does not change.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "u8"
    return "s8" if ("avx512_vnni" in flags or "avx_vnni" in flags) else "u8"


def weights_for_this_cpu(onnx_file: str | Path) -> Path:
    """`onnx_file`, or a cached copy of it with signed int8 weights where the CPU has VNNI (see `int8_weights`).

    Symmetric unsigned weights (zero point 128) and signed ones (zero point 0) stand for the same numbers, and the
    products are exact integers either way, so the copy gives the same outputs bit for bit, 1.8x faster on VNNI
    (measured on the reader). Any failure keeps the file as it is: slower, never different.
    """
    onnx_file = Path(onnx_file)
    if int8_weights() != "s8":
        return onnx_file
    try:
        st = onnx_file.stat()
        key = hashlib.blake2b(
            f"{onnx_file.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}".encode(), digest_size=8
        ).hexdigest()
        out = cache_root() / "signed" / f"{onnx_file.stem}-{key}.onnx"
        if out.is_file():
            return out
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(onnx_file))
        inits = {t.name: t for t in model.graph.initializer}
        changed = 0
        for node in model.graph.node:
            if node.op_type != "MatMulInteger" or len(node.input) < 4:
                continue
            w, zp = inits.get(node.input[1]), inits.get(node.input[3])
            if w is None or zp is None or w.data_type != onnx.TensorProto.UINT8:
                continue
            zero = numpy_helper.to_array(zp)
            if not (zero == 128).all():
                continue
            signed = (numpy_helper.to_array(w).astype(np.int16) - 128).astype(np.int8)
            w.CopyFrom(numpy_helper.from_array(signed, w.name))
            zp.CopyFrom(numpy_helper.from_array(np.zeros(zero.shape, np.int8), zp.name))
            changed += 1
        if not changed:
            return onnx_file
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
        return out
    except Exception:  # no onnx package, a read-only cache, an unusual graph: the original works
        return onnx_file


def _quantize_int8(src: Path, dst: Path, signed: bool = False) -> None:
    """Dynamic int8 quantization of the matrix multiplications, with per-channel weights.

    Args:
        signed: signed (s8) weights, for VNNI CPUs (see `int8_weights`); unsigned (u8, AVX2-friendly) otherwise.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.registry import IntegerOpsRegistry
    except ImportError as exc:
        raise ConfigError(f"int8 quantization needs the onnx package ({exc}); run `make install`") from None

    # The settings of optimum's AutoQuantizationConfig.avx2/avx512_vnni(is_static=False): every op with an integer
    # kernel (the embedding Gather included, which is what shrinks the file to a quarter).
    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=list(IntegerOpsRegistry.keys()),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8 if signed else QuantType.QUInt8,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "DefaultTensorType": 1},
    )


class OnnxEncoder:
    """Encodes text with an exported ONNX model, reproducing the sentence-transformers pipeline.

    It offers the small part of the SentenceTransformer interface that the embedder uses
    (`encode`, `max_seq_length`, `get_sentence_embedding_dimension`, `tokenizer`), without importing PyTorch.

    Args:
        model_path: the local sentence-transformers folder the export came from (tokenizer and pooling are read there).
        onnx_file: the exported .onnx file.
        threads: intra-op threads for batches (default: every core); single texts use one.
    """

    def __init__(self, model_path: str | Path, onnx_file: str | Path, threads: int | None = None):
        from tokenizers import Tokenizer

        model_path = Path(model_path)
        cfg = _pipeline_config(model_path)
        self.max_seq_length = cfg["max_seq_length"]
        self._pooling = cfg["pooling"]
        self._normalize = cfg["normalize"]
        self._lower = cfg["do_lower_case"]
        tok = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        tok.enable_truncation(self.max_seq_length)
        tok.no_padding()
        self.tokenizer = tok
        self.onnx_file = str(onnx_file)
        self._threads = threads or max(1, os.cpu_count() or 1)
        self._sessions: dict[int, ort.InferenceSession] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        session = self._session(1)
        self._inputs = [i.name for i in session.get_inputs()]
        self._dimension = int(session.get_outputs()[0].shape[-1])

    def _session(self, threads: int) -> ort.InferenceSession:
        """One session per thread count, created on first use.

        A single question runs on one thread: waking a pool of spinning threads costs more than the work on a
        busy machine. Batches of documents use every core.
        """
        session = self._sessions.get(threads)
        if session is None:
            import onnxruntime as ort

            with self._lock:
                session = self._sessions.get(threads)
                if session is None:
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = threads
                    opts.inter_op_num_threads = 1
                    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                    opts.log_severity_level = 3
                    session = ort.InferenceSession(self.onnx_file, opts, providers=["CPUExecutionProvider"])
                    self._sessions[threads] = session
        return session

    def get_sentence_embedding_dimension(self) -> int:
        return self._dimension

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="onnx-batch")
        return self._pool

    def _batch(self, texts: Sequence[str], threads: int | None = None) -> np.ndarray:
        encs = self.tokenizer.encode_batch([t.lower() if self._lower else t for t in texts])
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        types = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
            types[i, :n] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        session = self._session(threads or (1 if len(texts) <= 2 else self._threads))
        hidden = session.run(None, {n: feed[n] for n in self._inputs})[0]
        if self._pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        m = mask[..., None].astype(np.float32)
        if self._pooling == "max":
            return np.where(m > 0, hidden, -1e9).max(axis=1).astype(np.float32)
        return ((hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)).astype(np.float32)

    def encode(
        self,
        texts: Sequence[str] | str,
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
        progress: Callable[[int], None] | None = None,
        **_: object,
    ) -> np.ndarray:
        """Vectors of shape (len(texts), dimension), float32; batches are cut from length-sorted texts.

        Args:
            texts: strings (a single string gives a (1, dimension) array).
            batch_size: texts per model call.
            normalize_embeddings: L2-normalize (the model's Normalize module does so regardless).
        """
        if isinstance(texts, str):
            texts = [texts]
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        cuts = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if len(cuts) > 1 and self._threads > 1:
            # Whole batches side by side, one core each: a MiniLM layer's matrices are too small for several
            # threads to share one well (1.2-1.5x the tokens/s of one batch on every core, docs/benchmarks.md).
            results = self._workers().map(lambda idx: self._batch([texts[j] for j in idx], 1), cuts)
        else:
            results = (self._batch([texts[j] for j in idx]) for idx in cuts)
        for idx, vecs in zip(cuts, results):
            out[idx] = vecs
            if progress:
                progress(len(idx))
        if self._normalize or normalize_embeddings:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out

    encode_query = encode
    encode_document = encode


def load_onnx_encoder(model_path: str | Path, backend: str) -> OnnxEncoder:
    """An OnnxEncoder for `backend` ("onnx" or "onnx-int8"), exporting the model into the cache if needed."""
    return OnnxEncoder(model_path, ensure_export(model_path, backend))
