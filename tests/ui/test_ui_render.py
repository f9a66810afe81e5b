"""Presentation and access helpers of the web app: escaping, refs, confidence cue, login secrets, bind warnings."""

from __future__ import annotations

import re

import pytest

from rag.errors import ConfigError
from rag.index.catalog import DocumentInfo
from rag.library.excerpts import Excerpt
from rag.types import Answer, Citation, Passage
from ui import render
from ui.access import exposure_warning, is_loopback, resolve_auth

HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) ![i](http://example.com/t.png) $$x$$ # head"


def _markdown_html(md: str) -> str:
    """Render like the chatbot does (markdown-it, CommonMark, links on); the real browser check is in test_ui_inert."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True, "linkify": False}).render(md)


def test_md_escape_leaves_no_markup_but_the_same_visible_text():
    out = _markdown_html(render.md_escape(HOSTILE))
    assert "<script" not in out and "<img" not in out and "<a " not in out and "<h1" not in out
    text = re.sub(r"<[^>]+>", "", out).strip()
    import html

    assert html.unescape(text) == " ".join(HOSTILE.split())


def _answer(abstained: bool) -> Answer:
    c = Citation(1, "d1", "T <b>", "s.txt", 3, 20, HOSTILE, 0.9)
    p = Passage("d1", "T [x](javascript:alert(1))", "s.txt", 0, 40, HOSTILE, 0.5)
    if abstained:
        return Answer("q", "No passage in the indexed articles answers this.", True, 0.2, (), (p,))
    return Answer("q", f"{HOSTILE} [1]", False, 0.91, (c,), (p,))


def test_answer_markdown_links_only_our_own_refs():
    md = render.answer_markdown(_answer(False), 4, 0.5)
    out = _markdown_html(md)
    hrefs = re.findall(r'href="([^"]*)"', out)
    assert hrefs == ["#cite-4-1"]
    assert "High confidence (0.91)" in re.sub(r"<[^>]+>", "", out)
    md = render.answer_markdown(_answer(True), 2, 0.5)
    hrefs = re.findall(r'href="([^"]*)"', _markdown_html(md))
    assert hrefs == ["#passage-2-1"]
    assert "Not answered" in md and "nearest passages" in md.lower()


@pytest.mark.parametrize(
    "ref,parsed",
    [
        ("cite-0-1", ("cite", 0, 1)),
        ("passage-12-3", ("passage", 12, 3)),
        ("cite-1", None),
        ("cite--1-2", None),
        ("javascript:alert(1)", None),
        (None, None),
        ("cite-1-2 ", None),
    ],
)
def test_parse_ref(ref, parsed):
    assert render.parse_ref(ref) == parsed


def test_excerpt_html_escapes_everything_and_marks_the_span():
    text = "before " + HOSTILE + " after"
    ex = Excerpt(
        "d",
        "<img src=x onerror=alert(9)>",
        "<b>me</b>",
        None,
        "a<b>.txt",
        "javascript:alert(1)",
        text,
        100,
        7,
        7 + len(HOSTILE),
        False,
        10_000,
    )
    out = render.excerpt_html(ex, "[1]")
    assert "<script" not in out and "<img" not in out and "javascript:" not in out.replace("javascript:alert(3)", "")
    assert out.count("<mark") == 1
    mark = re.search(r"<mark[^>]*>(.*?)</mark>", out, re.S).group(1)
    import html

    assert html.unescape(mark) == HOSTILE
    assert "characters 107–" in out


def test_documents_html_escapes_titles():
    d = DocumentInfo("id", "<script>x</script>", "<img src=x onerror=1>.txt", "a&b", None, None, None, "h", 3)
    out = render.documents_html([d])
    assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out


def test_library_rows_link_to_their_article_and_show_metadata():
    hostile_id = "business/001'><script>x</script>"
    d = DocumentInfo(
        hostile_id,
        "Ad sales",
        "a.jsonl#1",
        None,
        "BBC <News>",
        None,
        "2005-01-02T10:00:00+00:00",
        "h",
        3,
        section="business",
    )
    out = render.documents_html([d])
    assert "<script" not in out and "BBC &lt;News&gt;" in out and "2005-01-02<" in out and ">business<" in out
    href = re.search(r"href='#([^']*)'", out).group(1)
    assert render.parse_doc_ref(href) == hostile_id
    assert render.parse_doc_ref("doc-a b") is None and render.parse_ref(href) is None


def test_listing_and_counts_html():
    from rag.library.listing import list_documents

    docs = [
        DocumentInfo(
            f"business/{i}", f"T{i}", "s", None, None, None, f"2005-0{1 + i % 2}-01", "h", 1, section="business"
        )
        for i in range(1, 8)
    ]
    listing = list_documents(docs, per_page=5, page=2)
    out = render.listing_html(listing)
    assert "6–7 of 7 articles · page 2 of 2" in out and out.count("<tr data-id") == 2
    counts = render.counts_html(listing)
    assert "business <b>7</b>" in counts and "2005-02 <b>4</b> · 2005-01 <b>3</b>" in counts
    assert "No article matches" in render.listing_html(list_documents(docs, query="zzz"))


def test_source_list_and_panel_show_date_section_outlet():
    c = Citation(
        1,
        "politics/001",
        "Balls on the Budget",
        "a.jsonl#9",
        0,
        5,
        "quote",
        0.9,
        outlet="BBC",
        date="2005-03-16",
        section="politics",
    )
    assert render.source_choice(c) == "[1] Balls on the Budget — 2005-03-16 · politics · BBC"
    ex = Excerpt(
        "politics/001",
        "Balls",
        None,
        "BBC",
        "a.jsonl#9",
        None,
        "text",
        0,
        0,
        0,
        True,
        4,
        date="2005-03-16",
        section="politics",
    )
    out = render.excerpt_html(ex, "article")
    assert "2005-03-16 · politics" in out and "politics/001" in out and "characters" not in out


# -- access ------------------------------------------------------------------------------------------------------


def test_auth_flag_wins_then_env_then_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("filer:pw-from-file\n")
    env = {"RAG_AUTH": "envy:pw:with:colons", "RAG_AUTH_FILE": str(secret)}
    assert resolve_auth("flag:pw", env).as_tuple() == ("flag", "pw")
    assert resolve_auth(None, env).as_tuple() == ("envy", "pw:with:colons")
    assert resolve_auth(None, {"RAG_AUTH_FILE": str(secret)}).as_tuple() == ("filer", "pw-from-file")
    assert resolve_auth(None, {}) is None


@pytest.mark.parametrize("value", ["nocolon-SECRET", ":SECRET", "SECRET:", ""])
def test_malformed_auth_is_refused_without_echoing_it(value):
    with pytest.raises(ConfigError) as info:
        resolve_auth(None, {"RAG_AUTH": value} if value else {"RAG_AUTH_FILE": "/nonexistent/secret"})
    assert "SECRET" not in str(info.value)


def test_credentials_never_show_the_password():
    creds = resolve_auth("alice:s3cret-Pw")
    assert "s3cret-Pw" not in repr(creds) and "s3cret-Pw" not in str(creds)


@pytest.mark.parametrize(
    "host,loop",
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host, loop):
    assert is_loopback(host) is loop


def test_exposure_warning_only_without_auth_off_loopback():
    creds = resolve_auth("a:b")
    assert exposure_warning("0.0.0.0", None, False) and "without a login" in exposure_warning("0.0.0.0", None, False)
    assert exposure_warning("0.0.0.0", creds, False) is None
    assert exposure_warning("127.0.0.1", None, False) is None
    assert "public URL" in exposure_warning("127.0.0.1", None, True)


def test_short_answer_is_bold_in_the_chat_and_marked_in_the_sources_panel():
    text = "Talks resume. The pause could be lifted once peace talks are set <soon>. Nothing else."
    quote = "The pause could be lifted once peace talks are set <soon>."
    s = text.index(quote)
    a = text.index("once peace talks are set")
    c = Citation(
        1,
        "d1",
        "T",
        "s.txt",
        s,
        s + len(quote),
        quote,
        0.9,
        answer="once peace talks are set",
        answer_start=a,
        answer_end=a + len("once peace talks are set"),
    )
    out = _markdown_html(render.answer_markdown(Answer("q", f"{quote} [1]", False, 0.9, (c,), ()), 0, 0.5))
    assert "<strong>once peace talks are set</strong>" in out
    assert "&lt;soon&gt;" in out and "<soon>" not in out
    from rag.library.excerpts import excerpt
    from rag.types import Document

    doc = Document("d1", text, "T", "s.txt", "h")
    html_out = render.excerpt_html(
        excerpt(doc, c.start, c.end, quote=quote, answer=(c.answer_start, c.answer_end)), "[1]"
    )
    assert "<strong class='src-answer'>once peace talks are set</strong>" in html_out
    assert "<mark class='src-quote'>The pause could be lifted <strong" in html_out and "&lt;soon&gt;" in html_out
    # A short answer outside the quote is not marked.
    stray = render.excerpt_html(excerpt(doc, c.start, c.end, quote=quote, answer=(0, 5)), "[1]")
    assert "src-answer" not in stray


def test_a_follow_up_answer_says_how_it_was_read():
    from rag.types import Answer, Citation
    from ui.render import answer_markdown, md_escape

    c = Citation(1, "bank/001", "t", "s", 0, 10, "1,500 jobs", 0.8)
    text = answer_markdown(
        Answer(
            "How many will go in IT?", "x", False, 0.8, (c,), read_as="How many will go in IT? (ABN Amro)", follows=1
        ),
        1,
        0.2,
    )
    assert md_escape("Read as: How many will go in IT? (ABN Amro) (following question 1)") in text
    plain = answer_markdown(Answer("q", "x", False, 0.8, (c,)), 0, 0.2)
    assert "Read as" not in plain
