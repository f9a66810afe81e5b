"""Pure presentation: answers as chat markdown, excerpts and status as HTML. Every piece of article text is escaped.

The chat (markdown, sanitized by the chatbot) and the panels (gr.HTML, which is *not* sanitized) both show text
that comes from articles and from people, so nothing untrusted reaches them unescaped: markdown punctuation is
backslash-escaped and HTML special characters become entities.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import quote, unquote, urlparse

from rag.index.catalog import DocumentInfo
from rag.library.excerpts import Excerpt
from rag.library.library import LibraryStatus, StoredUpload
from rag.library.listing import Listing
from rag.types import Answer, Citation

if TYPE_CHECKING:
    from rag.web.sources import UpdateReport

__all__ = [
    "md_escape",
    "confidence_cue",
    "answer_markdown",
    "cite_ref",
    "passage_ref",
    "parse_ref",
    "excerpt_html",
    "EMPTY_PANEL",
    "status_html",
    "status_line",
    "documents_html",
    "listing_html",
    "counts_html",
    "doc_ref",
    "parse_doc_ref",
    "about",
    "source_choice",
    "uploads_html",
    "Skip",
]

Skip: TypeAlias = dict[str, str]
"""What `gr.skip()` returns: a handler gives it for an output it leaves as it is."""

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$&:])")
_REF = re.compile(r"^(cite|passage)-(\d{1,6})-(\d{1,4})$")
_DOC_REF = re.compile(r"^doc-([A-Za-z0-9%._~-]{1,600})$")

EMPTY_PANEL = (
    "<div class='src-empty'>Ask a question, then click a citation such as <b>[1]</b> to read the quoted "
    "passage in its article.</div>"
)


def md_escape(text: str) -> str:
    """Text that markdown shows literally: no markup, links, images, HTML or LaTeX survive.

    Backslash escapes cover markdown punctuation; `&`, `<` and `>` are escaped the same way, so the
    renderer's own entity handling shows them as typed. Newlines become spaces (quotes are one line).
    """
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def cite_ref(turn: int, number: int) -> str:
    return f"cite-{turn}-{number}"


def passage_ref(turn: int, number: int) -> str:
    return f"passage-{turn}-{number}"


def parse_ref(ref: str | None) -> tuple[str, int, int] | None:
    """("cite" | "passage", turn, number) from a ref made by cite_ref/passage_ref, else None."""
    m = _REF.match(ref or "")
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def doc_ref(doc_id: str) -> str:
    """The ref of a whole article (a Library row): "doc-" and the id, percent-encoded so it is safe in a link."""
    return "doc-" + quote(doc_id, safe="")


def parse_doc_ref(ref: str | None) -> str | None:
    """The article id of a ref made by doc_ref, else None."""
    m = _DOC_REF.match(ref or "")
    return unquote(m.group(1)) if m else None


def about(date: str | None, section: str | None, outlet: str | None) -> str:
    """ "2024-03-06 · politics · Reuters": whichever of an article's date, section and outlet it has."""
    return " · ".join(x for x in ((date or "")[:10], section, outlet) if x)


def source_choice(c: Citation) -> str:
    """A citation in the chat's list of sources: number, title, then date, section and outlet."""
    meta = about(c.date, c.section, c.outlet)
    return f"[{c.number}] {c.title[:70]}" + (f" — {meta}" if meta else "")


def confidence_cue(answer: Answer, threshold: float) -> str:
    """One line that says how far to trust the answer."""
    c = answer.confidence
    if answer.abstained:
        return f"Not answered: confidence {c:.2f} is below {threshold:.2f}. The nearest passages are listed to check."
    if c >= 0.8:
        return f"High confidence ({c:.2f})."
    return f"Moderate confidence ({c:.2f}): check the quote in its article."


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def answer_markdown(answer: Answer, turn: int, threshold: float) -> str:
    """The chat message for an answer: quotes with [n] links, a confidence line, nearest passages on abstention."""
    cue = f"*{md_escape(confidence_cue(answer, threshold))}*"
    read = [f"*{md_escape(read_as_line(answer))}*"] if answer.read_as else []
    if answer.abstained:
        lines = [f"**{md_escape(answer.text)}**", "", cue, *(["", *read] if read else [])]
        if answer.passages:
            lines += ["", "Nearest passages:", ""]
            for i, p in enumerate(answer.passages, start=1):
                lines.append(
                    f"{i}\\. [{md_escape(_snippet(p.title, 80))}](#{passage_ref(turn, i)}) — {md_escape(_snippet(p.text))}"
                )
        return "\n".join(lines)
    quoted = " ".join(f"{_quote_markdown(c)} [[{c.number}]](#{cite_ref(turn, c.number)})" for c in answer.citations)
    articles = len({c.doc_id for c in answer.citations})
    where = f"{len(answer.citations)} quote{'s' if len(answer.citations) != 1 else ''} from {articles} article{'s' if articles != 1 else ''}"
    return "\n".join([f"> {quoted}", "", f"{cue} {md_escape(where)}", *(["", *read] if read else [])])


def read_as_line(answer: Answer) -> str:
    """How a follow-up was read, for the line under its answer."""
    return f"Read as: {answer.read_as} (following question {answer.follows})"


def _quote_markdown(c: Citation) -> str:
    """A citation's quote, escaped, with its short answer (if any) in bold."""
    if c.answer_start is None or c.answer_end is None or not c.start <= c.answer_start < c.answer_end <= c.end:
        return md_escape(c.quote)
    a, b = c.answer_start - c.start, c.answer_end - c.start
    pre, ans, post = c.quote[:a], c.quote[a:b], c.quote[b:]
    # Spaces stay outside the bold markers, or markdown does not close them.
    return (
        f"{md_escape(pre)}{' ' if pre[-1:].isspace() else ''}**{md_escape(ans.strip())}**"
        f"{' ' if post[:1].isspace() else ''}{md_escape(post)}"
    ).strip()


def _byline(author: str | None, outlet: str | None) -> str:
    return " · ".join(x for x in (author, outlet) if x)


def excerpt_html(ex: Excerpt, label: str) -> str:
    """The sources panel for one citation or passage: title, byline, source, and the text with the span marked."""
    e = html.escape
    head = (
        f"<div class='src-head'><span class='src-label'>{e(label)}</span> <b class='src-title'>{e(ex.title)}</b></div>"
    )
    when = about(ex.date, ex.section, None)
    meta = [
        x for x in (when, _byline(ex.author, ex.outlet), ex.doc_id, ex.source if ex.source != ex.doc_id else "") if x
    ]
    # A whole article opened from the Library has no quoted span to locate.
    span = [f"characters {ex.start + ex.mark_start}–{ex.start + ex.mark_end}"] if ex.mark_end > ex.mark_start else []
    meta_html = " · ".join(f"<span>{e(x)}</span>" for x in meta + span)
    url = ""
    if ex.url and urlparse(ex.url).scheme in ("http", "https"):
        url = f" · <a href='{e(ex.url, quote=True)}' target='_blank' rel='noopener noreferrer'>{e(ex.url)}</a>"
    if ex.changed:
        note = (
            "<div class='src-note'>This article has changed since the answer was given; only the quote is shown. "
            "Ask again to cite the current text.</div>"
        )
        body = f"<mark class='src-quote'>{e(ex.text)}</mark>"
        return f"<div class='src'>{head}<div class='src-meta'>{meta_html}</div>{note}<div class='src-text'>{body}</div></div>"
    pre, mark, post = ex.text[: ex.mark_start], ex.marked, ex.text[ex.mark_end :]
    lead = "" if ex.whole or ex.start == 0 else "… "
    tail = "" if ex.whole or ex.start + len(ex.text) >= ex.doc_chars else " …"
    inner = e(mark)
    if ex.mark_start <= ex.answer_start < ex.answer_end <= ex.mark_end:
        a, b = ex.answer_start - ex.mark_start, ex.answer_end - ex.mark_start
        inner = f"{e(mark[:a])}<strong class='src-answer'>{e(mark[a:b])}</strong>{e(mark[b:])}"
    body = f"{lead}{e(pre)}<mark class='src-quote'>{inner}</mark>{e(post)}{tail}"
    cls = "src-text src-whole" if ex.whole else "src-text"
    return f"<div class='src'>{head}<div class='src-meta'>{meta_html}{url}</div><div class='{cls}'>{body}</div></div>"


def status_line(status: LibraryStatus) -> str:
    """The one-line index summary under the title (HTML)."""
    e = html.escape
    building = " · <b>rebuilding…</b>" if status.building else ""
    return (
        f"<div class='status-line'>{status.documents} article{'s' if status.documents != 1 else ''} · "
        f"{status.chunks} passages · model {e(status.model)} · built {e(status.built_at)}{building}</div>"
    )


def status_html(status: LibraryStatus) -> str:
    """The index status table of the library view (HTML)."""
    e = html.escape
    rows = [
        ("Index folder", status.index_dir),
        ("Index version", status.version),
        ("Embedding model", status.model),
        ("Articles indexed", str(status.documents)),
        ("Passages", str(status.chunks)),
        ("Built at", status.built_at),
        ("Articles folder", status.source),
        ("Uploads folder", status.uploads_dir),
    ]
    if status.pending_uploads:
        rows.append(("Uploads waiting for a rebuild", ", ".join(status.pending_uploads)))
    if status.building:
        rows.append(("Build", "running"))
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f"<table class='status-table'>{cells}</table>"


def documents_html(docs: Sequence[DocumentInfo]) -> str:
    """The articles table of the library view: title (a link that opens the article), id, date, section, outlet,
    passages (HTML, all escaped)."""
    e = html.escape
    rows = "".join(
        f"<tr data-id='{e(d.id, quote=True)}'><td><a class='doc-link' href='#{e(doc_ref(d.id), quote=True)}'>{e(d.title)}</a></td>"
        f"<td class='doc-id'>{e(d.id)}</td><td class='nowrap'>{e((d.date or '')[:10])}</td><td>{e(d.section or '')}</td>"
        f"<td>{e(d.outlet or '')}</td><td class='num'>{d.chunks}</td></tr>"
        for d in docs
    )
    return (
        "<table class='docs-table'><thead><tr><th>Title</th><th>Id</th><th>Date</th><th>Section</th><th>Outlet</th>"
        f"<th class='num'>Passages</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def listing_html(listing: Listing) -> str:
    """One page of the Library table with a line that says which rows of how many are shown."""
    if not listing.total:
        return "<div class='docs-empty'>No article matches.</div>"
    first = (listing.page - 1) * listing.per_page + 1
    last = first + len(listing.rows) - 1
    head = (
        f"<div class='docs-count'>{first}–{last} of {listing.total} article{'s' if listing.total != 1 else ''}"
        f" · page {listing.page} of {listing.pages}</div>"
    )
    return head + documents_html(listing.rows)


def counts_html(listing: Listing, months: int = 12) -> str:
    """Counts of the matching articles by section and by month (the newest `months` months) (HTML)."""
    e = html.escape
    sections = " · ".join(f"{e(k)} <b>{v}</b>" for k, v in listing.by_section.items())
    dated = [(k, v) for k, v in listing.by_month.items() if k != "(none)"]
    shown = " · ".join(f"{e(k)} <b>{v}</b>" for k, v in dated[:months])
    more = f" · … {len(dated) - months} earlier months" if len(dated) > months else ""
    undated = listing.by_month.get("(none)", 0)
    none = f"{' · ' if shown else ''}undated <b>{undated}</b>" if undated else ""
    return (
        f"<div class='docs-counts'><div><span class='src-label'>By section:</span> {sections or '—'}</div>"
        f"<div><span class='src-label'>By month:</span> {shown}{more}{none}</div></div>"
    )


def uploads_html(stored: Sequence[StoredUpload], refused: Sequence[str]) -> str:
    """What happened to each uploaded file (HTML)."""
    e = html.escape
    items = []
    for s in stored:
        what = (
            "already uploaded" if s.already_present else f"added ({s.articles} article{'s' if s.articles != 1 else ''})"
        )
        items.append(f"<li class='up-ok'>{e(s.original_name)}: {what}, saved as {e(s.path.name)}</li>")
    for r in refused:
        items.append(f"<li class='up-refused'>Refused: {e(r)}</li>")
    hint = "<p>Press “Rebuild index” to make the new articles searchable.</p>" if stored else ""
    return f"<ul class='uploads'>{''.join(items)}</ul>{hint}"


def web_sources_html(sources: Sequence) -> str:
    """The followed feeds and sitemaps: URL, kind, last check, status, new items, last error (HTML, all escaped)."""
    e = html.escape
    if not sources:
        return "<p class='docs-count'>No feed or sitemap followed yet.</p>"
    rows = "".join(
        f"<tr><td class='src-path'>{e(s.url)}</td><td>{e(s.kind or '')}</td><td class='nowrap'>{e(s.last_check or 'never')}</td>"
        f"<td>{e(s.status)}</td><td class='num'>{s.new_items}</td>"
        f"<td class='up-refused'>{e(s.last_error or '')}</td></tr>"
        for s in sources
    )
    return (
        "<table class='docs-table web-sources'><thead><tr><th>Source</th><th>Kind</th><th>Last check</th>"
        f"<th>Status</th><th class='num'>New items</th><th>Last error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def web_report_html(report: UpdateReport) -> str:
    """What an "Add by URL" or "Update sources" did: one line per page or source, errors in full (HTML)."""
    e = html.escape
    items = []
    for s in report.sources:
        if s.error and not s.pages:
            items.append(f"<li class='up-refused'>{e(s.url)}: {e(s.error)}</li>")
        for p in s.pages:
            if p.error:
                items.append(f"<li class='up-refused'>{e(p.url)}: {e(p.error)}</li>")
            else:
                items.append(f"<li class='up-ok'>{e(p.status)}: {e(p.title or p.url)}</li>")
    b = report.build
    done = (
        (
            f"<p>Published: {b.documents} articles ({b.added} added, {b.updated} updated). The chat now answers from "
            "them.</p>"
        )
        if b
        else "<p>Nothing was published.</p>"
    )
    return f"<ul class='uploads'>{''.join(items)}</ul>{done}"
