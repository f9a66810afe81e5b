"""A two-passage document about places, pre-split into sentences: the hand-sized pool the ranking and answer tests share."""

from __future__ import annotations

from rag.types import Document, Passage, Sentence

TEXT = (
    "The Rhine rises in the Swiss Alps. It reaches the North Sea in the Netherlands.\n\n"
    "Lisbon was struck by an earthquake in 1755. It was rebuilt by the Marquis of Pombal."
)
DOC = Document("d", TEXT, "Places", "places.txt", "h")


def sentences(parts: list[str]) -> list[Sentence]:
    """Sentences of TEXT with their offsets."""
    out = []
    for part in parts:
        s = TEXT.index(part)
        out.append(Sentence("d", s, s + len(part), part))
    return out


def pool(embedder):
    """(passages, their sentences, their sentence vectors): the Rhine passage first, then the Lisbon one."""
    first = sentences(["The Rhine rises in the Swiss Alps.", "It reaches the North Sea in the Netherlands."])
    second = sentences(["Lisbon was struck by an earthquake in 1755.", "It was rebuilt by the Marquis of Pombal."])
    passages = []
    for group in (first, second):
        s, e = group[0].start, group[-1].end
        passages.append(Passage("d", "Places", "places.txt", s, e, TEXT[s:e], 0.5))
    vecs = [embedder.embed_documents([x.text for x in g]) for g in (first, second)]
    return passages, [first, second], vecs
