"""Hostile files: every file is ingested with exact offsets or skipped with a one-line reason naming it.

A generated corpus of nasty files goes through a whole build; hypothesis then throws random bytes, random
text in several encodings and random JSON at the readers.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag import build_index, open_index
from rag.ingest.chunking import chunk_document
from rag.ingest.files import SUPPORTED_EXTENSIONS, load_documents, read_file
from rag.ingest.formats import decode_text

from fakes import FakeEmbedder

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MIB = 1024 * 1024


def _pdf(text: str | None) -> bytes:
    """A minimal one-page PDF showing `text` (None: a page with no text)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1") if text else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _encrypted_pdf(text: str, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(text))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def big_file(tmp_path_factory) -> Path:
    """A 50 MiB + 1 byte text file, written once per session."""
    path = tmp_path_factory.mktemp("big") / "big-50mb.txt"
    line = b"The pier reopened on Tuesday after three weeks of repairs and the ferries run again.\n"
    with open(path, "wb") as f:
        for _ in range(50 * MIB // len(line)):
            f.write(line)
        f.write(b"x" * (50 * MIB + 1 - f.tell()))
    return path


# name -> (bytes, expected: "ingest", "skip", or "either"), plus a substring of the reason or text when known.
def _nasty_files() -> dict[str, tuple[bytes, str, str]]:
    good = "The harbour reopened on Tuesday. Ferries run on the winter timetable until March.\n"
    nested = "<html><body>" + "<div>" * 20000 + "<p>Deep text.</p>" + "</div>" * 20000 + "</body></html>"
    return {
        "good.txt": (good.encode(), "ingest", "harbour reopened"),
        "empty.txt": (b"", "skip", "empty file"),
        "zero.md": (b"", "skip", "empty file"),
        "blank.txt": (b" \n\t\n   \r\n", "skip", "no text"),
        "binary.txt": (bytes(range(256)) * 64, "skip", "binary"),
        "png-as.md": (b"\x89PNG\r\n\x1a\n" + os.urandom(2048), "skip", "binary"),
        "elf-as.html": (b"\x7fELF\x02\x01\x01\x00" + bytes(1024), "skip", "binary"),
        "utf16le.txt": (("\ufeff" + good).encode("utf-16-le"), "ingest", "harbour reopened"),
        "utf16be.txt": (("\ufeff" + good).encode("utf-16-be"), "ingest", "harbour reopened"),
        "utf16-nobom.txt": (good.encode("utf-16-le"), "skip", "binary"),
        "latin1.txt": (
            "Caf\xe9 cr\xe8me br\xfbl\xe9e costs \xa35. Na\xefve r\xe9sum\xe9.".encode("latin-1"),
            "ingest",
            "Café crème",
        ),
        "invalid-utf8.txt": (
            b"Valid start. \xc3\x28 bad pair \xa0\xa1 and \xff\xfe\xfd tail. End.",
            "ingest",
            "Valid start.",
        ),
        "nul-middle.txt": (good.encode() + b"\x00" + good.encode(), "skip", "NUL"),
        "long-line.txt": (("word " * 100_000).encode(), "ingest", "word word"),
        "no-spaces.txt": (b"a" * 200_000, "ingest", "aaaa"),
        "crlf.md": (
            b"# Title\r\n\r\nLine one.\r\nLine two.\rLine three.\r\n",
            "ingest",
            "Line one.\nLine two.\nLine three.",
        ),
        "bidi-zero-width.txt": (
            "\u202eevil\u202c text. Zero\u200bwidth. e\u0301 combining. \U0001f600 done.".encode(),
            "ingest",
            "\u202eevil",
        ),
        "nested.html": (nested.encode(), "either", ""),
        "broken.html": (
            b"<html><head><title>Broken</title><body><p>Unclosed <b>bold <i>text that goes on. "
            b"A second sentence about the pier.<div><table><tr><td>cell</body></html><<<>>>&&&;",
            "either",
            "",
        ),
        "script-only.htm": (b"<html><script>while(1){}</script></html>", "skip", ""),
        "wrong-types.jsonl": (
            b'{"text": 5}\n[1, 2]\n"just a string"\nnull\n{"text": "Fine line."}\n'
            b'{"text": "Bad title.", "title": {"a": 1}}\n{"text": "Id as number.", "id": 7}\n'
            b"{not json\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n",
            "ingest",
            "Fine line.",
        ),
        "all-bad.jsonl": (b'{"text": null}\n{"txt": "no"}\n', "skip", "no usable JSON lines"),
        "surrogates.jsonl": (b'{"text": "Lone \\ud800 surrogate in text."}\n', "ingest", "Lone \ufffd surrogate"),
        "wrong-top.json": (b"42", "skip", "no usable records"),
        "articles-str.json": (b'{"articles": "not a list"}', "skip", "no usable records"),
        "deep.json": (b"[" * 100_000 + b"]" * 100_000, "skip", "JSON"),
        "text.pdf": (_pdf("The pier reopened on Tuesday."), "ingest", "pier reopened"),
        "blank.pdf": (_pdf(None), "skip", "no text"),
        "encrypted.pdf": (_encrypted_pdf("Secret pier news.", "user-secret"), "skip", "encrypted"),
        "owner-only.pdf": (_encrypted_pdf("Owner locked pier news.", ""), "ingest", "Owner locked"),
        "truncated.pdf": (_pdf("The pier reopened on Tuesday.")[:120], "skip", "PDF"),
        "garbage.pdf": (b"%PDF-1.7\n" + os.urandom(4096), "skip", "PDF"),
        "self-kids.pdf": (_pdf("x").replace(b"/Kids [3 0 R]", b"/Kids [2 0 R]"), "either", ""),
    }


def _make_corpus(root: Path) -> dict[str, tuple[str, str]]:
    expect = {}
    for name, (data, outcome, hint) in _nasty_files().items():
        (root / name).write_bytes(data)
        expect[name] = (outcome, hint)
    (root / "loop-a.txt").symlink_to("loop-b.txt")
    (root / "loop-b.txt").symlink_to("loop-a.txt")
    (root / "dangling.txt").symlink_to("does-not-exist.txt")
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)  # a folder loop
    os.mkfifo(root / "fifo.txt")  # reading it would block forever
    (root / "folder.txt").mkdir()
    (root / "new\nline name.txt").write_text("A file whose name has a newline. It still counts.", encoding="utf-8")
    (root / os.fsdecode(b"undecodable-\xff.txt")).write_bytes(b"A file whose name is not UTF-8. Fine text.")
    expect.update(
        {
            "loop-a.txt": ("skip", "symbolic link loop"),
            "loop-b.txt": ("skip", "symbolic link loop"),
            "dangling.txt": ("skip", "broken symbolic link"),
            "fifo.txt": ("skip", "not a regular file"),
            "new\nline name.txt": ("ingest", "newline"),
            os.fsdecode(b"undecodable-\xff.txt"): ("ingest", "not UTF-8"),
        }
    )
    return expect


def _build_in_thread(source: Path, index: Path, **kwargs):
    """Run a build in a non-main thread (as the web app does) and fail instead of hanging."""
    box: dict = {}

    def run() -> None:
        try:
            box["stats"] = build_index(source, index, embedder=FakeEmbedder(), **kwargs)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=420)
    assert not t.is_alive(), "the build hung"
    if "error" in box:
        raise box["error"]
    return box["stats"]


def test_nasty_corpus_build(tmp_path, big_file, monkeypatch):
    source = tmp_path / "nasty"
    source.mkdir()
    expect = _make_corpus(source)
    os.link(big_file, source / big_file.name)  # same file, no second 50 MB write
    expect[big_file.name] = ("skip", "50 MB limit")

    stats = _build_in_thread(source, tmp_path / "index")
    idx = open_index(tmp_path / "index", embedder=FakeEmbedder())
    docs = {d.id: idx.document(d.id) for d in idx.documents()}

    for s in stats.skipped:
        assert "\n" not in s.path + s.reason, s
        assert s.reason.strip()
    skipped = {s.path: s.reason for s in stats.skipped}
    outcomes = {}
    for name, (want, hint) in expect.items():
        shown = str(source / name).replace("\n", "\\n").replace("\udcff", "\ufffd")
        mine = {p: r for p, r in skipped.items() if p == shown or p.startswith(shown + ":")}
        # Sources are kept relative to the folder read.
        ingested = [d for d in docs.values() if d.source.split("#")[0] == name.replace("\udcff", "\ufffd")]
        got = "ingest" if ingested else "skip" if shown in mine else "lost"
        outcomes[name] = got
        assert got != "lost", f"{name!r} was neither ingested nor skipped with a reason"
        if want != "either":
            assert got == want, (name, got, mine)
        if got == "skip" and hint:
            assert hint in mine[shown], (name, mine[shown])
        if got == "ingest" and hint and name not in ("new\nline name.txt",):
            assert any(hint in d.text or hint in d.source for d in ingested), (name, [d.text[:80] for d in ingested])
    # Unreachable files are still reported, never silently dropped.
    assert "folder.txt" not in outcomes or outcomes["folder.txt"] != "lost"

    # Offsets: every chunk and sentence lies inside its document, and the chunks cover all of its text
    # (except in text that repeats one word: see test_chunks_cover_periodic_text).
    for doc_id, doc in docs.items():
        chunks = idx.catalog.chunks_of([doc_id])
        assert chunks, doc_id
        for c in chunks:
            assert 0 <= c.start < c.end <= len(doc.text)
        if doc_id not in PERIODIC:
            assert _uncovered(doc.text, [(c.start, c.end) for c in chunks]) == 0, doc_id
        for s in idx.catalog.sentences_of([doc_id]):
            assert 0 <= s.start < s.end <= len(doc.text)
    answer = idx.query("when did the pier reopen?")
    for c in answer.citations:
        assert docs[c.doc_id].text[c.start : c.end] == c.quote
    idx.close()


PERIODIC = ("long-line.txt", "no-spaces.txt")


def _uncovered(text: str, spans: list[tuple[int, int]]) -> int:
    covered = bytearray(len(text))
    for start, end in spans:
        covered[start:end] = b"\x01" * (end - start)
    return sum(1 for i, ch in enumerate(text) if not covered[i] and not ch.isspace())


@pytest.mark.parametrize("text", ["word " * 20_000, "a" * 40_000])
def test_chunks_cover_periodic_text(text):
    from rag.ingest.formats import _finish

    emb = FakeEmbedder()
    doc = _finish({"text": text}, "periodic.txt", "periodic.txt")
    chunks = chunk_document(doc, 128, 24, emb.count_tokens, emb.max_tokens)
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    assert _uncovered(doc.text, [(c.start, c.end) for c in chunks]) == 0


def test_50mb_file_is_read_when_the_cap_allows(big_file):
    docs = read_file(big_file, max_file_mb=51)
    assert len(docs) == 1 and len(docs[0].text) == 50 * MIB + 1
    skipped = load_documents(big_file, max_file_mb=50).skipped
    assert len(skipped) == 1 and "50 MB limit (max_file_mb)" in skipped[0].reason


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    """chmod 000 stops no one when tests run as root, so a refused read is simulated there."""
    (tmp_path / "ok.txt").write_text("Readable text.", encoding="utf-8")
    locked = tmp_path / "locked.txt"
    locked.write_text("Secret text.", encoding="utf-8")
    locked.chmod(0)
    if os.geteuid() == 0:
        real = Path.read_bytes

        def refuse(self: Path) -> bytes:
            if self.name == "locked.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    result = load_documents(tmp_path)
    assert [d.text for d in result.documents] == ["Readable text."]
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [
        ("locked.txt", "cannot read (Permission denied)")
    ]


def test_parse_time_cap_holds_in_a_background_thread(tmp_path, monkeypatch):
    import rag.ingest.formats as ingest

    def endless(path, html):
        while True:
            pass

    monkeypatch.setattr(ingest, "_read_html", endless)
    (tmp_path / "slow.html").write_text("<p>Never finishes.</p>", encoding="utf-8")
    (tmp_path / "fine.txt").write_text("Finishes at once.", encoding="utf-8")
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(r=load_documents(tmp_path, parse_timeout_s=0.5)))
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the parse-time cap did not hold outside the main thread"
    result = box["r"]
    assert [d.text for d in result.documents] == ["Finishes at once."]
    assert [Path(s.path).name for s in result.skipped] == ["slow.html"]
    assert "parse_timeout_s" in result.skipped[0].reason
    # The runaway parser is stopped too, not left spinning.
    deadline = time.monotonic() + 10
    while any(th.name.startswith("rag-parse") for th in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(th.name.startswith("rag-parse") for th in threading.enumerate())


def _valid_offsets(docs) -> None:
    emb = FakeEmbedder()
    for doc in docs:
        assert "\x00" not in doc.text and doc.text.strip()
        doc.text.encode("utf-8")  # storable: no lone surrogates
        for c in chunk_document(doc, 32, 4, emb.count_tokens, emb.max_tokens):
            assert doc.text[c.start : c.end] == c.text


def _one(name: str, data: bytes, **kwargs):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        result = load_documents(path, **kwargs)
        for s in result.skipped:
            assert s.path.startswith(str(path)) and s.reason and "\n" not in s.reason
        if not result.documents:
            assert result.skipped, "a file vanished without a reason"
        _valid_offsets(result.documents)
        return result, path


@FUZZ
@given(data=st.binary(max_size=4096), ext=st.sampled_from(SUPPORTED_EXTENSIONS))
def test_random_bytes_any_extension(data, ext):
    result, _ = _one("fuzz" + ext, data)
    if ext in (".txt",) and result.documents:
        assert result.documents[0].text == decode_text(data, "x")


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=2000)


@FUZZ
@given(text=_TEXT, encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
def test_random_text_round_trips(text, encoding):
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
        encoding = "utf-8"
    result, _ = _one("fuzz.txt", data)
    if result.documents:
        expected = text.replace("\r\n", "\n").replace("\r", "\n")
        if encoding in ("utf-8", "utf-8-sig", "utf-16") and not text.startswith("\ufeff"):
            assert result.documents[0].text == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["text", "id", "title", "url", "date", "x"]), inner, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(records=st.lists(_JSON, min_size=1, max_size=8))
def test_random_json_lines(records):
    data = "\n".join(json.dumps(r) for r in records).encode()
    result, _ = _one("fuzz.jsonl", data)
    good = [r for r in records if isinstance(r, dict) and isinstance(r.get("text"), str) and r["text"].strip()]
    assert len(result.documents) <= len(records)
    if not good:
        assert not result.documents


_TAGS = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<p>",
        "</p>",
        "<b>",
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<",
        ">",
        "&amp;",
        "&#0;",
        "&#x110000;",
        "<![CDATA[",
        "]]>",
        "<title>",
        "</title>",
        "<meta charset=x>",
    ]
)


@FUZZ
@given(parts=st.lists(_TAGS | st.text(max_size=40), max_size=60))
def test_random_html(parts):
    _one("fuzz.html", "".join(parts).encode("utf-8", "surrogatepass"))
