from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rag.errors import SourceError
from rag.ingest.files import load_documents
from rag.ingest.formats import parse_byline

from conftest import SEEDS


def _write(folder: Path, name: str, data: str | bytes) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def test_seed_article_keeps_its_text_and_byline():
    result = load_documents(SEEDS)
    (doc,) = result.documents
    raw = next(SEEDS.glob("*.txt")).read_text(encoding="utf-8")
    assert doc.text == raw
    assert (doc.author, doc.outlet) == ("Dave DeCamp", "Antiwar.com")
    assert doc.title.startswith("The Trump administration has paused intelligence sharing")
    assert len(doc.content_hash) == 64 and doc.source.endswith(".txt")


def test_byline_parser():
    assert parse_byline("(Jane Roe, Example News) Body")[:2] == ("Jane Roe", "Example News")
    assert parse_byline("No byline (here, there)")[0] is None


def test_formats(tmp_path):
    _write(tmp_path, "a.md", "Intro line\n\n# The Heading\n\nBody text of markdown.")
    _write(tmp_path, "sub/b.txt", "Plain text article. Second sentence.")
    _write(
        tmp_path,
        "c.html",
        "<html><head><title>Page Title</title></head><body><nav>menu</nav><article><h1>Real"
        " Headline</h1><p>"
        + "The council approved the budget on Monday after a long debate. " * 5
        + "</p></article></body></html>",
    )
    _write(
        tmp_path,
        "d.jsonl",
        json.dumps({"id": "x1", "title": "T1", "text": "First record.", "author": "A"})
        + "\n"
        + json.dumps({"text": "Second record."})
        + "\n",
    )
    _write(tmp_path, "e.json", json.dumps([{"text": "Json list record one."}, {"text": "Two.", "title": "Two"}]))
    result = load_documents(tmp_path)
    by_title = {d.title: d for d in result.documents}
    assert by_title["The Heading"].text.startswith("Intro line")
    assert "Plain text article" in by_title["Plain text article."].text
    html = next(d for d in result.documents if d.source.endswith("c.html"))
    assert "The council approved the budget" in html.text and "menu" not in html.text
    assert html.title in ("Real Headline", "Page Title")
    ids = {d.id for d in result.documents}
    assert "x1" in ids and "d.jsonl#2" in ids and "sub/b.txt" in ids
    assert by_title["T1"].author == "A"
    assert {"Json list record one.", "Two."} <= {d.text for d in result.documents}
    assert not result.skipped


def test_pdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    _write(tmp_path, "blank.pdf", buf.getvalue())
    _write(tmp_path, "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    _write(tmp_path, "ok.txt", "Keeps the build going.")
    result = load_documents(tmp_path)
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert "no text" in reasons["blank.pdf"]
    assert "PDF" in reasons["broken.pdf"]
    assert [d.text for d in result.documents] == ["Keeps the build going."]


def test_bad_files_are_skipped_with_reasons(tmp_path):
    _write(tmp_path, "empty.txt", b"")
    _write(tmp_path, "blank.txt", "   \n\n  ")
    _write(tmp_path, "binary.txt", b"\x00\x01\x02\x03binary\x00data")
    _write(tmp_path, "latin1.txt", "Caf\xe9 prices rose to \xa315.".encode("latin-1"))
    _write(tmp_path, "utf16.txt", "UTF-16 article text.".encode("utf-16"))
    _write(tmp_path, "bad.jsonl", '{"text": "good line"}\n{not json}\n{"text": 5}\n')
    _write(tmp_path, "bad.json", "{broken")
    _write(tmp_path, "image.png", b"\x89PNG")
    result = load_documents(tmp_path)
    reasons = {
        Path(s.path.split(":")[0]).name + (":" + s.path.split(":")[1] if ":" in s.path else ""): s.reason
        for s in result.skipped
    }
    assert "empty" in reasons["empty.txt"]
    assert "no text" in reasons["blank.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "malformed JSON line" in reasons["bad.jsonl:2"]
    assert "'text'" in reasons["bad.jsonl:3"]
    assert "malformed JSON" in reasons["bad.json"]
    assert "unsupported" in reasons["image.png"]
    texts = {d.text for d in result.documents}
    assert "Café prices rose to £15." in texts
    assert "UTF-16 article text." in texts
    assert "good line" in texts


def test_size_cap(tmp_path):
    _write(tmp_path, "big.txt", "word " * 300_000)
    result = load_documents(tmp_path, max_file_mb=1)
    assert not result.documents
    assert "1 MB limit" in result.skipped[0].reason


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        load_documents(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no articles found"):
        load_documents(tmp_path / "empty")


def test_duplicate_ids_are_made_unique(tmp_path):
    _write(
        tmp_path,
        "a.jsonl",
        json.dumps({"id": "same", "text": "one"}) + "\n" + json.dumps({"id": "same", "text": "two"}),
    )
    ids = [d.id for d in load_documents(tmp_path).documents]
    assert ids == ["same", "same~2"]


def test_symlink_loop_does_not_hang(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    _write(tmp_path, "a/x.txt", "Text.")
    assert [d.text for d in load_documents(tmp_path).documents] == ["Text."]


NEWS = Path(__file__).parents[1] / "fixtures" / "news"


def test_news_fixture_metadata_from_every_format():
    docs = {d.id: d for d in load_documents(NEWS).documents}
    html = docs["budget-2024.html"]
    assert (html.date, html.date_raw) == ("2024-03-06T12:30:00+00:00", "2024-03-06T12:30:00Z")  # JSON-LD datePublished
    assert (html.section, html.outlet, html.author, html.tags) == (
        "Politics",
        "Harbour Herald",
        "Mara Quill",
        ("budget", "tax"),
    )
    md = docs["harbour-ferry.md"]
    assert (md.title, md.date, md.author, md.outlet, md.section, md.tags) == (
        "Night ferry to the islands returns",
        "2023-11-02",
        "Ines Marlow",
        "Coastal Courier",
        "Transport",
        ("ferries", "islands"),
    )
    assert not md.text.startswith("---") and "title:" not in md.text  # front matter is metadata, not quotable text
    wire = docs["wire/001"]
    assert (wire.date, wire.date_raw) == ("2024-03-06T15:00:00+00:00", "Wed, 06 Mar 2024 15:00:00 GMT")  # `published`
    assert (wire.section, wire.outlet, wire.tags) == (
        "business",
        "Northwind Wire",
        ("budget", "fuel"),
    )  # `source` names the outlet
    assert docs["wire/002"].section == "politics"  # `topic`
    assert docs["wire/003"].section == "culture"  # `category`
    assert (docs["wire/003"].date, docs["wire/003"].date_raw) == (None, "sometime last spring")  # unreadable: dateless
    assert docs["wire/004"].date is None and docs["wire/004"].date_raw is None
    # Sources are relative to the folder read: never where the files live on this machine.
    assert {d.source for d in docs.values()} >= {"budget-2024.html", "harbour-ferry.md", "wires.jsonl#1"}
    assert not any(str(NEWS) in d.source for d in docs.values())


def test_page_without_a_stated_date_stays_dateless(tmp_path):
    page = (
        "<html><head><title>Pier notes</title></head><body><article><h1>Pier notes</h1>"
        + "<p>The pier reopened after repairs and the cafe at its end serves tea again to walkers.</p>" * 3
        + "</article></body></html>"
    )
    _write(tmp_path, "pier.html", page)
    doc = load_documents(tmp_path).documents[0]
    assert doc.date is None and doc.date_raw is None


def test_meta_tag_and_time_element_dates(tmp_path):
    body = "<p>The lifeboat crew trained in the bay all morning and returned before the tide turned.</p>" * 3
    _write(
        tmp_path,
        "a.html",
        f"<html><head><meta property='article:published_time' content='2022-07-01T08:00:00+02:00'>"
        f"</head><body><article>{body}</article></body></html>",
    )
    _write(
        tmp_path,
        "b.html",
        f"<html><body><article><time datetime='2021-05-04'>4 May</time>{body}</article></body></html>",
    )
    docs = {d.id: d for d in load_documents(tmp_path).documents}
    assert docs["a.html"].date == "2022-07-01T06:00:00+00:00"
    assert docs["b.html"].date == "2021-05-04"


def test_bbc_topic_is_the_section(tmp_path):
    from conftest import BBC, require_shared

    require_shared(BBC)
    with BBC.open(encoding="utf-8") as f:
        _write(tmp_path, "articles.jsonl", f.readline())
    doc = load_documents(tmp_path).documents[0]
    assert (doc.id, doc.section, doc.source, doc.date) == ("business/001", "business", "articles.jsonl#1", None)


def test_documents_stream_one_file_at_a_time_in_load_order(tmp_path):
    from rag.ingest.files import find_files, iter_documents, load_documents

    (tmp_path / "a.txt").write_text("First article.")
    (tmp_path / "b.jsonl").write_text('{"id": "x", "text": "One."}\n{"id": "y", "text": "Two."}\nnot json\n')
    (tmp_path / "c.bin").write_bytes(b"\x00\x01")
    (tmp_path / "d.txt").write_text("")
    skipped: list = []
    stream = iter_documents(tmp_path, skipped)
    first = next(stream)
    assert first.text == "First article."
    assert [s.path for s in skipped] == [str(tmp_path / "c.bin")], "found-but-unsupported files are known at once"
    rest = list(stream)
    whole = load_documents(tmp_path)
    assert [d.id for d in [first, *rest]] == [d.id for d in whole.documents]
    assert sorted(s.reason for s in skipped) == sorted(s.reason for s in whole.skipped)
    assert find_files(tmp_path).estimated_documents() == 1 + 3 + 1  # a.txt, three lines of b.jsonl, d.txt


def test_streaming_a_missing_source_fails_on_the_first_step(tmp_path):
    from rag.ingest.files import iter_documents

    with pytest.raises(SourceError, match="no such file or folder"):
        next(iter_documents(tmp_path / "nowhere", []))
