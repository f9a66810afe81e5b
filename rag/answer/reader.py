"""The reader: a small model that reads a question with a window of text and points at the answer in it.

A window is one candidate sentence with up to one neighbour on each side. The model (MiniLM-L6 fine-tuned as a
span extractor by `tools/train_reader.py`, shipped as int8 ONNX in `rag/data/reader/`) scores every token as the
answer's first and last token, and `[CLS]` as "this window does not answer". For each sentence of a window the
reader keeps its best span inside that sentence and the margin of that span over no-answer: the margin ranks the
sentences of different windows and questions against each other, and the span is the short answer.

Only onnxruntime, tokenizers and numpy are needed at query time (no PyTorch). `export_reader` (used by the fit
script) needs PyTorch and onnx.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ConfigError
from rag.index.lexical import content_terms
from rag.index.onnx_export import weights_for_this_cpu
from rag.types import Sentence

__all__ = [
    "DEFAULT_READER",
    "MAX_ANSWER_TOKENS",
    "OnnxReader",
    "Reader",
    "Reading",
    "Window",
    "export_reader",
    "load_reader",
    "reader_manifest",
]

DEFAULT_READER = "default"
MODEL_FILE = "reader_int8.onnx"
MANIFEST_FILE = "manifest.json"
# Short answers longer than this many tokens are not proposed (a sentence is quoted anyway).
MAX_ANSWER_TOKENS = 30
# How many of a sentence's best spans are tried, best first, for one that says something the question does not.
SPANS_TRIED = 20
_CHOICE = re.compile(r"\w\s+or\s+\w", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """Consecutive sentences of one document, read together; `sentences` are in order and share `doc_id`.

    `focus` indexes the sentence the window was opened for: a window too long for the model keeps only it.
    """

    sentences: tuple[Sentence, ...]
    focus: int = 0

    @property
    def doc_id(self) -> str:
        return self.sentences[0].doc_id

    @property
    def start(self) -> int:
        return self.sentences[0].start

    @property
    def end(self) -> int:
        return self.sentences[-1].end


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one sentence of a window.

    Attributes:
        sentence: the sentence (document offsets).
        score: best span inside the sentence minus the window's no-answer score (log-odds scale; > 0 means the
            model prefers this span to "no answer").
        answer_start, answer_end: the span's document offsets, inside the sentence.
    """

    sentence: Sentence
    score: float
    answer_start: int
    answer_end: int


class Reader(Protocol):
    """Reads (question, window) pairs; one Reading per sentence of each window, in window order."""

    def read(
        self, question: str, windows: Sequence[Window], texts: dict[str, str] | None = None
    ) -> list[list[Reading]]: ...


def packaged_reader_dir() -> Path:
    return Path(str(resources.files("rag").joinpath("data", "reader")))


def reader_manifest(folder: str | Path | None = None) -> dict:
    """The manifest of a reader folder (default: the shipped one): training data hash, settings, measured figures."""
    folder = Path(folder) if folder else packaged_reader_dir()
    try:
        return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{folder / MANIFEST_FILE} cannot be read ({type(exc).__name__}); "
            "pass --reader none or a reader folder made by tools/train_reader.py"
        ) from None


class OnnxReader:
    """The span reader run by onnxruntime from a folder holding `reader_int8.onnx`, `tokenizer.json` and the manifest.

    Args:
        folder: the reader folder.
        threads: intra-op threads (default: every core, at most 4).
    """

    def __init__(self, folder: str | Path, threads: int | None = None):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.folder = folder
        self.manifest = reader_manifest(folder)
        settings = self.manifest.get("settings", {})
        self.max_length = int(settings.get("max_length", 128))
        self.max_question = int(settings.get("max_question", 40))
        model = folder / MODEL_FILE
        if not model.is_file() or not (folder / "tokenizer.json").is_file():
            raise ConfigError(
                f"{folder} holds no {MODEL_FILE} and tokenizer.json; pass --reader none or a reader folder"
            )
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        cls, sep = self._tok.token_to_id("[CLS]"), self._tok.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ConfigError(
                f"{folder / 'tokenizer.json'} has no [CLS] or [SEP] token; pass --reader none or a reader folder"
            )
        self._cls, self._sep = cls, sep
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, min(4, os.cpu_count() or 1))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        fast = weights_for_this_cpu(model)
        error: Exception | None = None
        for path in dict.fromkeys((fast, model)):  # a damaged cached copy falls back to the shipped file
            try:
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                break
            except Exception as exc:
                error = exc
        else:
            raise ConfigError(
                f"{model} cannot be loaded by onnxruntime ({type(error).__name__}); "
                "pass --reader none or re-export it with tools/train_reader.py"
            ) from None
        # onnxruntime's run() is safe to call from several threads at once: no lock.
        self._inputs = {i.name for i in self._session.get_inputs()}

    def _encode_window(
        self, q_ids: list[int], window: Window, text: str
    ) -> tuple[list[int], list[tuple[int, int]], tuple[Sentence, ...]]:
        """Token ids and each context token's document offsets; a window too long for the model keeps only its
        focus sentence (cut at the model's length if it is still too long)."""
        room = self.max_length - len(q_ids) - 3
        sentences = list(window.sentences)
        start = sentences[0].start
        enc = self._tok.encode(text[start : sentences[-1].end], add_special_tokens=False)
        if len(enc.ids) > room and len(sentences) > 1:
            sentences = [window.sentences[window.focus]]
            start = sentences[0].start
            enc = self._tok.encode(text[start : sentences[-1].end], add_special_tokens=False)
        ids = enc.ids[:room]
        offsets = [(start + s, start + e) for s, e in enc.offsets[:room]]
        return ids, offsets, tuple(sentences)

    def read(
        self, question: str, windows: Sequence[Window], texts: dict[str, str] | None = None
    ) -> list[list[Reading]]:
        """Readings of every sentence of every window.

        Args:
            question: the question text.
            windows: what to read; `texts[doc_id]` (or the sentences' own text when absent) supplies the characters.
            texts: document texts by id, so that a window's offsets index its document.

        Returns:
            For each window, one Reading per sentence that fit in the model's input (a window too long for the
            model keeps its middle sentence).
        """
        if not windows:
            return []
        q_ids = self._tok.encode(question, add_special_tokens=False).ids[: self.max_question]
        # A choice question ("X or Y?") is answered by one of its own words.
        asked = frozenset() if _CHOICE.search(question) else frozenset(content_terms(question))
        rows = []
        for w in windows:
            text = texts.get(w.doc_id) if texts else None
            if text is None:
                text = _stitch(w)
            rows.append(self._encode_window(q_ids, w, text))
        n = max(len(ids) for ids, _, _ in rows) + len(q_ids) + 3
        input_ids = np.zeros((len(rows), n), dtype=np.int64)
        types = np.zeros_like(input_ids)
        mask = np.zeros_like(input_ids)
        head = [self._cls, *q_ids, self._sep]
        for r, (ids, _, _) in enumerate(rows):
            full = head + ids + [self._sep]
            input_ids[r, : len(full)] = full
            types[r, len(head) : len(full)] = 1
            mask[r, : len(full)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        start_logits, end_logits = self._session.run(None, feed)
        out = []
        first = len(head)
        for r, (ids, offsets, sentences) in enumerate(rows):
            null = float(start_logits[r, 0] + end_logits[r, 0])
            s_log = start_logits[r, first : first + len(ids)]
            e_log = end_logits[r, first : first + len(ids)]
            out.append(_sentence_readings(s_log, e_log, offsets, sentences, null, asked))
        return out


def _stitch(window: Window) -> str:
    """A stand-in document text that places each sentence at its own offsets (spaces between)."""
    chars = [" "] * window.end
    for s in window.sentences:
        chars[s.start : s.end] = s.text
    return "".join(chars)


def _sentence_readings(
    s_log: np.ndarray,
    e_log: np.ndarray,
    offsets: list[tuple[int, int]],
    sentences: tuple[Sentence, ...],
    null: float,
    asked: frozenset[str] = frozenset(),
) -> list[Reading]:
    """For each sentence: the best span (start <= end, at most MAX_ANSWER_TOKENS) among its tokens that holds a word
    the question does not (`asked`: the question's content terms).

    A span made only of the question's own words ("consumer goods giant Unilever" for "who will run Unilever?")
    restates the question instead of answering it, so the next best span is taken, and its margin is the sentence's
    score: a sentence whose best span only echoes the question does not rank on that echo. A sentence with no such
    span among its best SPANS_TRIED keeps the lowest margin it has and no short answer (an empty span)."""
    starts = np.array([o[0] for o in offsets])
    out = []
    for sent in sentences:
        idx = np.nonzero((starts >= sent.start) & (starts < sent.end))[0]
        if len(idx) == 0:
            continue
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        grid = s_log[lo:hi, None] + e_log[None, lo:hi]
        size = hi - lo
        band = np.triu(np.ones((size, size), dtype=bool)) & ~np.triu(
            np.ones((size, size), dtype=bool), MAX_ANSWER_TOKENS
        )
        grid = np.where(band, grid, -np.inf)
        flat = grid.ravel()
        tried = min(SPANS_TRIED, int(band.sum()))
        best = np.argpartition(-flat, tried - 1)[:tried]
        reading = None
        for k in sorted(best.tolist(), key=lambda k: -flat[k]):
            i, j = divmod(k, size)
            a_start, a_end = offsets[lo + i][0], min(offsets[lo + j][1], sent.end)
            a_start, a_end = _whole_words(sent, a_start, a_end)
            said = content_terms(sent.text[a_start - sent.start : a_end - sent.start])
            if said - asked:
                reading = Reading(sent, float(flat[k]) - null, a_start, a_end)
                break
        if reading is None:
            reading = Reading(sent, float(flat[np.isfinite(flat)].min()) - null, sent.start, sent.start)
        out.append(reading)
    return out


def _whole_words(sent: Sentence, start: int, end: int) -> tuple[int, int]:
    """Widen a span cut inside a word ("Gha" of "Ghazi", "94" of "940,000") to whole words of the sentence."""
    text, base = sent.text, sent.start
    s, e = start - base, end - base

    def inside(i: int) -> bool:
        """Character i continues the word or number around it (a digit group separator between digits counts)."""
        if not 0 <= i < len(text):
            return False
        ch = text[i]
        if ch.isalnum():
            return True
        return ch in ",." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()

    while s > 0 and inside(s - 1) and inside(s):
        s -= 1
    while e < len(text) and inside(e) and inside(e - 1):
        e += 1
    return base + s, base + e


@lru_cache(maxsize=4)
def load_reader(name: str) -> OnnxReader | None:
    """The reader a `reader` setting names: "default" (the shipped model), "none", or a folder.

    Raises:
        ConfigError: the folder is missing or holds no reader.
    """
    if name in ("", "none"):
        return None
    folder = packaged_reader_dir() if name == DEFAULT_READER else Path(name).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"reader folder {folder} does not exist; pass --reader default, none, or a reader folder")
    return OnnxReader(folder)


def export_reader(model_dir: str | Path, out_dir: str | Path, manifest: dict) -> Path:
    """Export a fine-tuned question-answering model (a transformers folder) to int8 ONNX in `out_dir`.

    Writes `reader_int8.onnx`, `tokenizer.json` and `manifest.json` (given `manifest` plus file hashes and size)
    into a temporary folder, then renames it into place.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from rag.index.onnx_export import _quantize_int8

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    work = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        names = ["input_ids", "attention_mask", "token_type_ids"]

        class _Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.start_logits, out.end_logits

        enc = tokenizer(
            ["a question", "another question"], ["some context text", "more"], return_tensors="pt", padding=True
        )
        axes = {n: {0: "batch", 1: "sequence"} for n in names + ["start_logits", "end_logits"]}
        fp32 = work / "reader_fp32.onnx"
        with torch.inference_mode():
            torch.onnx.export(
                _Logits(model),
                tuple(enc[n] for n in names),
                str(fp32),
                dynamo=False,
                opset_version=17,
                input_names=names,
                output_names=["start_logits", "end_logits"],
                dynamic_axes=axes,
            )
        _quantize_int8(fp32, work / MODEL_FILE)
        fp32.unlink()
        shutil.copy(model_dir / "tokenizer.json", work / "tokenizer.json")
        files = {}
        for name in (MODEL_FILE, "tokenizer.json"):
            data = (work / name).read_bytes()
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        (work / MANIFEST_FILE).write_text(json.dumps({**manifest, "files": files}, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir
