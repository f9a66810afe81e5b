from rag.sentences import MAX_SENTENCE_CHARS, split_sentences


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
