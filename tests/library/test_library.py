"""The web app's library: upload validation and storage, rebuild sources, live index swaps, excerpts, examples."""

from __future__ import annotations

import shutil
import stat
import threading
from pathlib import Path

import pytest

from rag import build_index
from rag.config import Settings
from rag.errors import BuildLockedError, SourceError, UploadError
from rag.ingest.uploads import safe_upload_name, uploads_folder
from rag.library.excerpts import excerpt
from rag.library.library import QUESTIONS_FILE, Library, save_upload

from conftest import SEEDS

ARTICLE = (
    "# Kestrel Valley solar farm\n\n"
    "The Kestrel Valley solar farm opened in 2021. It has a capacity of 340 megawatts, enough for 90,000 homes. "
    "Sheep graze between the panel rows to keep the grass short.\n"
)


@pytest.fixture
def lib(tmp_path, fake_embedder) -> Library:
    """A private index of a copy of seeds/ (fake embedder) with its own uploads folder."""
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    settings = Settings.load(
        {"source": str(src), "index_dir": str(tmp_path / "index"), "uploads_dir": str(tmp_path / "data" / "uploads")}
    )
    build_index(src, settings.index_dir, settings, embedder=fake_embedder)
    return Library(settings.index_dir, settings, embedder=fake_embedder)


def _upload(tmp_path: Path, name: str, data: bytes | str) -> Path:
    """A file as the web server leaves it in its temp folder (its own name there is irrelevant)."""
    p = tmp_path / "incoming" / "tmp-upload"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# -- names and validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.txt",
        "..\\..\\windows\\evil.md",
        "/etc/cron.d/x.html",
        "a/../../../b.jsonl",
        "....//....//x.txt",
        "x\x00.txt",
    ],
)
def test_safe_upload_name_drops_every_folder_part(name):
    out = safe_upload_name(name, "ab" * 32)
    assert "/" not in out and "\\" not in out and ".." not in out and "\x00" not in out
    assert out.endswith(Path(name.replace("\x00", "")).suffix.lower() or "")
    assert out.split("-")[-1].startswith("abababababab")


@pytest.mark.parametrize("name", ["../../etc/passwd", "run.sh", "evil.exe", "notes.txt.py", "page.php", "x.json"])
def test_unaccepted_types_are_refused(name):
    with pytest.raises(UploadError, match="not accepted"):
        safe_upload_name(name, "0" * 64)


def test_unicode_name_becomes_ascii_slug():
    assert safe_upload_name("Évènement À la Une!.TXT", "f" * 64) == "evenement-a-la-une-ffffffffffff.txt"
    assert safe_upload_name("日本語.md", "1" * 64) == "article-111111111111.md"


def test_traversal_name_is_stored_inside_the_uploads_folder(tmp_path):
    dest = tmp_path / "box" / "uploads"
    incoming = _upload(tmp_path, "x", ARTICLE)
    before = set(tmp_path.rglob("*"))
    stored = save_upload(incoming, "../../etc/passwd.txt", dest)
    assert stored.path.resolve().parent == dest.resolve()
    assert stored.path.name.startswith("passwd-") and stored.path.suffix == ".txt"
    created = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
    assert created == {stored.path}  # nothing written anywhere else, no leftover check folder
    assert stored.path.read_text() == ARTICLE
    mode = stat.S_IMODE(stored.path.stat().st_mode)
    assert mode & 0o111 == 0, "an upload must never be executable"
    assert stored.articles == 1 and "Kestrel Valley solar farm" in stored.title


def test_oversized_upload_is_refused_and_nothing_is_stored(tmp_path):
    dest = tmp_path / "uploads"
    with pytest.raises(UploadError, match=r"over the 0\.001 MB upload limit"):
        save_upload(_upload(tmp_path, "x", "word " * 400), "big.txt", dest, max_mb=0.001)
    assert not dest.exists() or not any(dest.iterdir())


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("binary.txt", bytes(range(256)) * 40, "binary"),
        ("empty.md", b"", "empty"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", ""),
        ("records.jsonl", b'{"no_text_field": 1}\n[1, 2]\n', ""),
    ],
)
def test_unreadable_uploads_are_refused_with_a_reason(tmp_path, name, data, reason):
    dest = tmp_path / "uploads"
    with pytest.raises(UploadError) as info:
        save_upload(_upload(tmp_path, "x", data), name, dest)
    assert name in str(info.value) and reason in str(info.value)
    assert not dest.exists() or not [p for p in dest.iterdir() if not p.name.startswith(".")]


def test_same_content_is_stored_once(tmp_path):
    dest = tmp_path / "uploads"
    first = save_upload(_upload(tmp_path, "x", ARTICLE), "solar.md", dest)
    second = save_upload(_upload(tmp_path, "x", ARTICLE), "solar.md", dest)
    assert first.path == second.path and second.already_present and not first.already_present
    assert [p.name for p in dest.iterdir()] == [first.path.name]


def test_uploads_folder_defaults_beside_the_index_not_inside(tmp_path):
    s = Settings.load({"index_dir": str(tmp_path / "idx")})
    assert uploads_folder(s) == tmp_path / "data" / "uploads" / "idx"
    assert uploads_folder(s.with_(uploads_dir=str(tmp_path / "u"))) == tmp_path / "u"


# -- rebuilds and the live index ---------------------------------------------------------------------------------


def test_upload_then_rebuild_answers_from_the_new_article(lib, tmp_path):
    old = lib.index
    assert lib.rebuild_sources() == [Path(lib.source())]
    stored = lib.save_upload(_upload(tmp_path, "x", ARTICLE), "solar.md")
    assert lib.status().pending_uploads == (stored.path.name,)
    assert lib.rebuild_sources() == [Path(lib.source()), lib.uploads_dir]

    stages = []
    stats = lib.rebuild(progress=lambda stage, done, total: stages.append(stage))
    assert stats.added == 1 and stats.documents == 2 and {"read", "embed", "write"} <= set(stages)
    assert lib.index is not old and lib.status().pending_uploads == ()
    # The previous version keeps answering for whoever still holds it.
    assert old.query("what would lift the pause?").passages

    answer = lib.ask("What is the capacity of the Kestrel Valley solar farm in megawatts?")
    assert answer.passages[0].source.endswith(stored.path.name)
    for c in answer.citations:
        assert lib.document(c.doc_id).text[c.start : c.end] == c.quote
    # The manifest still names the original folder, so the next rebuild reads both again.
    assert lib.source() == str(tmp_path / "articles")


def test_rebuild_refuses_when_the_original_source_is_gone(lib):
    version = lib.index.version
    shutil.rmtree(lib.source())
    with pytest.raises(SourceError, match="not found"):
        lib.rebuild()
    assert lib.index.version == version


def test_a_second_build_is_refused_while_one_runs(lib):
    from rag.index import indexdir

    with indexdir.build_lock(lib.index_dir):
        with pytest.raises(BuildLockedError, match="already running"):
            lib.rebuild()
    assert not lib.building


def test_concurrent_rebuilds_in_one_app_get_a_clear_error(lib, fake_embedder):
    gate = threading.Event()
    release = threading.Event()
    original = fake_embedder.embed_documents

    def slow(*args, **kwargs):
        gate.set()
        release.wait(10)
        return original(*args, **kwargs)

    fake_embedder.embed_documents = slow
    errors: list[Exception] = []
    t = threading.Thread(target=lib.rebuild)
    shutil.copy(SEEDS / "000_f517c2c1bff018e5.txt", Path(lib.source()) / "copy.txt")  # something to embed
    t.start()
    try:
        assert gate.wait(10)
        assert lib.building
        try:
            lib.rebuild()
        except BuildLockedError as exc:
            errors.append(exc)
    finally:
        release.set()
        t.join(20)
    assert len(errors) == 1 and "already running" in str(errors[0])


def test_library_picks_up_a_build_made_elsewhere(lib, fake_embedder, tmp_path):
    before = lib.index.version
    (Path(lib.source()) / "extra.md").write_text(ARTICLE)
    build_index(lib.source(), lib.index_dir, lib.settings.with_(model=fake_embedder.name), embedder=fake_embedder)
    assert lib.index.version != before
    assert any(d.source.endswith("extra.md") for d in lib.documents())


# -- excerpts and examples ---------------------------------------------------------------------------------------


def test_excerpt_marks_the_cited_span_by_offsets(lib):
    doc = lib.documents()[0]
    full = lib.document(doc.id)
    start = full.text.index("White House")
    end = full.text.index("are set.") + len("are set.")
    quote = full.text[start:end]
    ex = excerpt(full, start, end, quote=quote)
    assert ex.marked == quote and full.text[ex.start : ex.start + len(ex.text)] == ex.text
    assert ex.start < start and not ex.whole
    whole = excerpt(full, start, end, quote=quote, whole=True)
    assert whole.text == full.text and whole.marked == quote
    changed = excerpt(full, start, end, quote="a quote this article does not hold")
    assert changed.changed and changed.marked == "a quote this article does not hold"


def test_excerpt_uses_the_passage_that_holds_the_quote(lib):
    answer = lib.ask("what would lift the pause?")
    p = answer.passages[0]
    full = lib.document(p.doc_id)
    ex = excerpt(full, p.start + 5, p.start + 25, passages=answer.passages)
    assert ex.start == p.start and len(ex.text) == p.end - p.start


def test_examples_come_from_the_questions_file_and_must_be_answered(lib):
    qfile = Path(lib.source()) / QUESTIONS_FILE
    qfile.write_text("# comment\nwhat would lift the pause?\nxq zv wk?\n")
    got = lib.examples(limit=3)
    assert got[0] == "what would lift the pause?"
    assert all(not lib.ask(q).abstained for q in got)
    assert "# comment" not in got


def test_cli_rebuild_keeps_uploaded_articles(lib, tmp_path, fake_embedder, monkeypatch):
    """`rag rebuild-index` reads the uploads folder too, so `make run` does not drop articles added in the app."""
    from rag.cli import commands as cli

    stored = lib.save_upload(_upload(tmp_path, "x", ARTICLE), "solar.md")
    import rag.index.build
    import rag.index.version

    for module in (rag.index.build, rag.index.version):
        monkeypatch.setattr(module, "make_embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setenv("RAG_UPLOADS_DIR", str(lib.uploads_dir))
    code = cli.main(["rebuild-index", "--source", lib.source(), "--index", str(lib.index_dir), "--quiet"])
    assert code == 0
    assert any(d.source.endswith(stored.path.name) for d in lib.documents())
    assert lib.index.manifest["settings"]["source"] == lib.source()


def test_status_shows_no_absolute_server_path(lib, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a working folder that holds none of them
    status = lib.status()
    shown = " ".join([status.index_dir, status.source, status.uploads_dir])
    assert str(tmp_path) not in shown
    # The uploads folder beside the index is shown from the folder holding the index, never by its name alone
    # (with the default uploads folder, that name is the index's own).
    assert (status.index_dir, status.source, status.uploads_dir) == ("index", "articles", "data/uploads")
    monkeypatch.chdir(tmp_path)  # inside the working folder: relative paths
    assert (lib.status().source, lib.status().uploads_dir) == ("articles", "data/uploads")


def test_status_names_the_default_uploads_folder_not_the_index(tmp_path, fake_embedder, monkeypatch):
    from rag import build_index

    settings = Settings.load({"source": str(SEEDS), "index_dir": str(tmp_path / "idx")})
    build_index(SEEDS, settings.index_dir, settings, embedder=fake_embedder)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    status = Library(settings.index_dir, settings, embedder=fake_embedder).status()
    assert (status.index_dir, status.uploads_dir) == ("idx", "data/uploads/idx")
    assert str(tmp_path) not in status.uploads_dir


def test_listing_and_type_ahead_follow_the_live_index(lib, fake_embedder):
    docs = lib.documents()
    assert lib.listing().total == len(docs) >= 1
    title_word = docs[0].title.split()[0]
    assert docs[0].id in [d.id for d in lib.find_articles(title_word)]
    assert lib.find_articles("   ") == []
    (Path(lib.source()) / "extra.md").write_text(ARTICLE)
    build_index(lib.source(), lib.index_dir, lib.settings.with_(model=fake_embedder.name), embedder=fake_embedder)
    assert [d.id for d in lib.find_articles("Kestrel")] == ["extra.md"]
    assert lib.listing("kestrel valley").total == 1
