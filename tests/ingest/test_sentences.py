from rag.ingest.sentences import MAX_SENTENCE_CHARS, split_sentences


def test_offsets_are_exact_and_lines_end_sentences():
    text = "Headline without stop\nMr. Smith went to Washington. He said: “It is 3.5 km away.” Then left.\n\nNext para?"
    sents = split_sentences(text, "d")
    assert all(text[s.start : s.end] == s.text for s in sents)
    assert sents[0].text == "Headline without stop"
    assert any(s.text.startswith("Mr. Smith went to Washington.") for s in sents)
    assert sents[-1].text == "Next para?"
    assert [s.start for s in sents] == sorted(s.start for s in sents)


def test_very_long_sentence_is_cut_at_spaces():
    text = " ".join(["word"] * 1000)
    sents = split_sentences(text)
    assert all(len(s.text) <= MAX_SENTENCE_CHARS for s in sents)
    assert all(text[s.start : s.end] == s.text for s in sents)
    assert sum(len(s.text.split()) for s in sents) == 1000


def test_range_restricts_splitting():
    text = "One. Two. Three."
    sents = split_sentences(text, start=5, end=9)
    assert [s.text for s in sents] == ["Two."]


TRICKY_LINES = [
    "Mr. Smith went to Washington. He said: “It is 3.5 km away.” Then left.",
    "Yes. Yes. Yes.   No!",
    "The U.S. economy grew 3.2% in Q4, said Dr. J. R. R. Tolkien Jr. of the U.K. on Jan. 5.",
    "Trailing spaces.\u00a0\u00a0Non-breaking ones?\u2003Em space! And an ellipsis... then more",
    "(a) first item; (b) second item. 1. One 2. Two",
    '"Quoted." "Quoted." she said. \'Again?\' he asked.',
    "   leading spaces. e.g. this i.e. that etc. end",
    "No stop at all",
]


def test_fast_pieces_are_what_pysbd_segment_returns():
    from rag.ingest.sentences import _pieces, _segmenter

    seg = _segmenter()
    for line in TRICKY_LINES:
        assert _pieces(seg, line) == seg.segment(line), line


def test_pysbd_patterns_are_cached_without_changing_its_sentences():
    import re

    import pysbd

    from rag.ingest.sentences import _segmenter

    seg = _segmenter()
    patched = [m for name, m in __import__("sys").modules.items() if name.startswith("pysbd") and hasattr(m, "re")]
    assert patched and all(m.re is not re for m in patched)
    plain = pysbd.Segmenter(language="en", clean=False, char_span=False)
    saved = {m: m.re for m in patched}
    try:
        for m in patched:
            m.re = re
        expected = [plain.segment(line) for line in TRICKY_LINES]
    finally:
        for m, r in saved.items():
            m.re = r
    assert [seg.segment(line) for line in TRICKY_LINES] == expected
