"""The reader: the shipped model and its manifest, the Reader contract (shipped model and fake alike), loading."""

from __future__ import annotations

import hashlib
import json

import pytest

from rag.answer.ranking import load_model
from rag.answer.reader import (
    MAX_ANSWER_TOKENS,
    MODEL_FILE,
    OnnxReader,
    Window,
    load_reader,
    packaged_reader_dir,
    reader_manifest,
)
from rag.answer.reading import load_blend
from rag.errors import ConfigError
from rag.types import Sentence

from conftest import ROOT
from fakes import FakeReader

TEXT = (
    "The Eiffel Tower was finished in 1889. It stands in Paris, on the Champ de Mars. "
    "Gustave Eiffel's company designed and built it. About seven million people visit it every year."
)


def _sentences() -> list[Sentence]:
    out, pos = [], 0
    for part in (
        "The Eiffel Tower was finished in 1889.",
        "It stands in Paris, on the Champ de Mars.",
        "Gustave Eiffel's company designed and built it.",
        "About seven million people visit it every year.",
    ):
        s = TEXT.index(part, pos)
        out.append(Sentence("t", s, s + len(part), part))
        pos = s + len(part)
    return out


@pytest.fixture(scope="module")
def shipped():
    return load_reader("default")


def test_shipped_reader_files_match_the_manifest():
    folder = packaged_reader_dir()
    manifest = reader_manifest(folder)
    for name, info in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
    assert (folder / MODEL_FILE).stat().st_size <= 25 * 1024 * 1024
    assert len(manifest["training_data"]["sha256"]) == 64
    assert manifest["settings"]["max_length"] >= 64
    assert set(manifest["fit"]["held_out"]) >= {"source", "span_f1", "auroc"}
    # Exported from the full-precision state kept in the repository (tools/reader_phase_state/), which started from
    # the complete pass (tools/reader_state/): the weights each state.json names are the ones the manifest names.
    phase = json.loads((ROOT / "tools" / "reader_phase_state" / "state.json").read_text())
    start = json.loads((ROOT / "tools" / "reader_state" / "state.json").read_text())
    assert manifest["fit"]["state_weights_sha256"] == phase["weights_sha256"] and phase["complete"]
    assert manifest["fit"]["from"]["weights_sha256"] == start["weights_sha256"] and start["complete"]


def test_shipped_reader_is_calibrated():
    blend = load_blend(packaged_reader_dir(), load_model())
    assert blend.candidates >= 1 and blend.reader > 0
    data = json.loads((packaged_reader_dir() / "calibration.json").read_text())
    # Calibrated on fit parts only: the SQuAD fit half and the news set's fit part (the holdout and the report part
    # are measured by `rag eval squad` and bench/news_eval.py, never used to calibrate).
    assert set(data["figures"]) == {"fit", "news_fit"} and data["figures"]["fit"]["answer@1"] > 0.8
    assert data["news"] == "news_calibration.jsonl" and data["figures"]["news_fit"]["abstain_auroc"] > 0.85


@pytest.mark.parametrize("make", [FakeReader, lambda: load_reader("default")], ids=["fake", "shipped"])
def test_reader_contract(make):
    reader = make()
    sents = _sentences()
    windows = [Window(tuple(sents[0:2]), 0), Window(tuple(sents[1:4]), 1), Window((sents[3],), 0)]
    out = reader.read("When was the Eiffel Tower finished?", windows, {"t": TEXT})
    assert len(out) == len(windows)
    for w, readings in zip(windows, out):
        assert [r.sentence for r in readings] == list(w.sentences)
        for r in readings:
            assert r.sentence.start <= r.answer_start < r.answer_end <= r.sentence.end
            assert TEXT[r.answer_start : r.answer_end].strip()
    assert reader.read("anything?", [], {"t": TEXT}) == []


def test_shipped_reader_finds_the_short_answer(shipped):
    sents = _sentences()
    window = Window(tuple(sents[0:3]), 1)
    cases = {
        "When was the Eiffel Tower finished?": "1889",
        "In which city is the Eiffel Tower?": "Paris",
        "Whose company built the tower?": "Gustave Eiffel",
    }
    for question, expected in cases.items():
        readings = shipped.read(question, [window], {"t": TEXT})[0]
        best = max(readings, key=lambda r: r.score)
        assert expected in TEXT[best.answer_start : best.answer_end], (
            question,
            TEXT[best.answer_start : best.answer_end],
        )


def test_shipped_reader_prefers_the_answering_window(shipped):
    sents = _sentences()
    answering, other = Window((sents[0],), 0), Window((sents[3],), 0)
    q = "When was the Eiffel Tower finished?"
    a, b = shipped.read(q, [answering, other], {"t": TEXT})
    assert a[0].score > b[0].score


def test_a_window_too_long_keeps_its_focus_sentence(shipped):
    filler = " ".join(["The weather was mild and nothing else happened that day."] * 30)
    text = f"{filler} The bridge opened in 1932. {filler}"
    s1 = Sentence("x", 0, len(filler), filler)
    start = text.index("The bridge")
    s2 = Sentence("x", start, start + len("The bridge opened in 1932."), "The bridge opened in 1932.")
    s3 = Sentence("x", s2.end + 1, len(text), text[s2.end + 1 :])
    readings = shipped.read("When did the bridge open?", [Window((s1, s2, s3), 1)], {"x": text})[0]
    assert [r.sentence for r in readings] == [s2]
    assert "1932" in text[readings[0].answer_start : readings[0].answer_end]
    assert MAX_ANSWER_TOKENS >= 10


def test_load_reader_names(tmp_path):
    assert load_reader("none") is None
    with pytest.raises(ConfigError, match="does not exist"):
        load_reader(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="manifest.json"):
        OnnxReader(tmp_path / "empty")
    with pytest.raises(ConfigError, match="calibration.json"):
        load_blend(tmp_path / "empty", load_model())


def test_a_calibration_may_read_more_when_unsure(tmp_path):
    """`more` / `more_below` come from calibration.json; one written before they existed reads a fixed count."""
    data = json.loads((packaged_reader_dir() / "calibration.json").read_text())
    data.pop("more", None), data.pop("more_below", None)
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    fixed = load_blend(tmp_path, load_model())
    assert fixed.more == 0 and fixed.candidates == data["candidates"]
    (tmp_path / "calibration.json").write_text(json.dumps({**data, "more": 4, "more_below": 2.5}))
    adaptive = load_blend(tmp_path, load_model())
    assert (adaptive.candidates, adaptive.more, adaptive.more_below) == (data["candidates"], 4, 2.5)


def test_spans_cut_inside_a_word_widen_to_whole_words():
    from rag.answer.reader import _whole_words

    text = "Mr Ghazi said 940,000 people (about 3.5%) came."
    s = Sentence("x", 10, 10 + len(text), text)
    for cut, whole in (("Gha", "Ghazi"), ("hazi", "Ghazi"), ("94", "940,000"), ("3", "3.5"), ("people", "people")):
        i = text.index(cut)
        a, b = _whole_words(s, 10 + i, 10 + i + len(cut))
        assert text[a - 10 : b - 10] == whole


def test_batched_windows_read_like_single_ones(shipped):
    """Padding a short window to its batch's longest must not change what the reader finds in it."""
    sents = _sentences()
    windows = [Window((sents[0],), 0), Window(tuple(sents[0:4]), 1), Window((sents[2],), 0)]
    q = "Who designed the tower?"
    batched = shipped.read(q, windows, {"t": TEXT})
    for w, together in zip(windows, batched):
        alone = shipped.read(q, [w], {"t": TEXT})[0]
        # The span stays where the reader sees an answer at all; far below "no answer" (a margin under -5: the
        # sentence that names no designer) near-equal spans may trade places with the batch's int8 scale.
        assert all(
            (a.answer_start, a.answer_end) == (b.answer_start, b.answer_end)
            for a, b in zip(alone, together)
            if max(a.score, b.score) > -5
        )
        assert [r.sentence for r in alone] == [r.sentence for r in together]
        # int8 activations are scaled per batch (its padding included), so margins move a little: most where they
        # are far from zero, least near it, where the answer path's decisions lie; their sign never changes.
        assert all((a.score > 0) == (b.score > 0) for a, b in zip(alone, together))
        assert all(
            abs(a.score - b.score) < 0.15 * max(abs(a.score), abs(b.score), 2.0) for a, b in zip(alone, together)
        )


def _grid_for(sent: Sentence, favour: list[tuple[str, float]]):
    """Start/end logits over `sent`'s words (one token per word) that favour the given words' spans in order."""
    import re

    import numpy as np

    words = [(m.start() + sent.start, m.end() + sent.start, m.group()) for m in re.finditer(r"\w+", sent.text)]
    s_log, e_log = np.zeros(len(words)), np.zeros(len(words))
    for phrase, value in favour:
        first = next(i for i, w in enumerate(words) if w[2] == phrase.split()[0])
        last = first + len(phrase.split()) - 1
        s_log[first] += value
        e_log[last] += value
    return s_log, e_log, [(a, b) for a, b, _ in words]


def test_a_short_answer_is_never_only_the_questions_words():
    from rag.answer.reader import _sentence_readings
    from rag.index.lexical import content_terms

    # More than MAX_ANSWER_TOKENS words apart, so that no span joins the two.
    text = "Unilever, " + "so the report said, " * 8 + "will be run by Patrick Cescau alone."
    sent = Sentence("u", 0, len(text), text)
    s_log, e_log, offsets = _grid_for(sent, [("Unilever", 5.0), ("Patrick Cescau", 3.0)])
    asked = frozenset(content_terms("Who will run Unilever?"))
    (reading,) = _sentence_readings(s_log, e_log, offsets, (sent,), 0.0, asked)
    assert text[reading.answer_start : reading.answer_end] == "Patrick Cescau"
    # The sentence scores by the span it answers with, not by the echo of the question.
    assert reading.score == pytest.approx(6.0)
    # Without the question's words to avoid, the model's best span stands.
    (plain,) = _sentence_readings(s_log, e_log, offsets, (sent,), 0.0)
    assert text[plain.answer_start : plain.answer_end] == "Unilever"


def test_a_sentence_of_only_question_words_has_no_short_answer():
    from rag.answer.reader import _sentence_readings
    from rag.index.lexical import content_terms

    text = "Unilever runs Unilever."
    sent = Sentence("u", 0, len(text), text)
    s_log, e_log, offsets = _grid_for(sent, [("Unilever", 5.0)])
    (reading,) = _sentence_readings(s_log, e_log, offsets, (sent,), 0.0, frozenset(content_terms("Who runs Unilever?")))
    assert reading.answer_start == reading.answer_end
    assert reading.score < 5.0


def test_a_choice_question_may_be_answered_by_its_own_words(shipped):
    sents = _sentences()
    (readings,) = shipped.read("Was the Eiffel Tower finished in 1889 or 1901?", [Window((sents[0],), 0)], {"t": TEXT})
    assert TEXT[readings[0].answer_start : readings[0].answer_end] == "1889"
