"""The web app: a chat that answers with quoted, cited sentences, a sources panel, and a library view (Gradio).

All engine work goes through rag.library.library.Library; this module only lays out components and wires events.

Run with `rag serve [--index index/] [--host 127.0.0.1] [--port 7860] [--mcp] [--auth user:password]`.
"""

from __future__ import annotations

import os

# Before gradio is imported: no usage reporting, no model hub; this app works offline.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import html  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.errors import ConfigError, QuestionError, RagError  # noqa: E402
from rag.ingest.uploads import UPLOAD_EXTENSIONS  # noqa: E402
from rag.library.library import Library, excerpt  # noqa: E402
from rag.types import Answer  # noqa: E402
from ui import render  # noqa: E402
from ui.access import DEFAULT_HOST, Credentials, exposure_warning, resolve_auth, resolve_cors_origins  # noqa: E402
from ui.api import create_api  # noqa: E402
from ui.atom import feed_route  # noqa: E402
from ui.server import Served, start  # noqa: E402
from ui.watched import watched_tab  # noqa: E402

__all__ = ["create_app", "launch", "serve", "DEFAULT_PORT"]

DEFAULT_PORT = 7860
QUEUE_WORKERS = 4  # questions answered at once, by the chat and by the JSON API alike; more wait their turn
PER_PAGE = 50  # rows of the Library table per page


def parse_history_json(history) -> list | None:
    """The `history` argument of the /ask endpoint and MCP tool: JSON text of a list of turns (a list is taken as is).

    Raises:
        QuestionError: the text is not JSON.
    """
    if history is None or history == "" or history == []:
        return None
    if isinstance(history, (list, tuple)):
        return list(history)
    if not isinstance(history, str):
        raise QuestionError(f"history must be JSON text of a list of earlier turns, got {type(history).__name__}")
    try:
        return json.loads(history)
    except json.JSONDecodeError as exc:
        raise QuestionError(
            f"history is not JSON ({exc.msg} at character {exc.pos}); send a JSON list of earlier "
            'turns, each a question or {"question": ..., "answer": ...}'
        ) from None


def _ids(text: str | None) -> list[str] | None:
    """Article ids from an endpoint's comma-separated text (None when empty)."""
    ids = [i.strip() for i in (text or "").split(",") if i.strip()]
    return ids or None


# Citation markers in answers are links to "#cite-<turn>-<n>" / "#passage-<turn>-<n>". This listener, installed once
# by the sources panel, turns a click on one into the panel's click event with the ref as data, so no hidden
# inputs are needed; on a phone, where the panel sits below the chat, it scrolls the panel into view.
BRIDGE_JS = """
window.__ragTrigger = trigger;
if (!window.__ragBridge) {
  window.__ragBridge = true;
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href^="#cite-"], a[href^="#passage-"], a[href^="#doc-"]');
    if (!a) return;
    e.preventDefault(); e.stopPropagation();
    window.__ragTrigger('click', {ref: a.getAttribute('href').slice(1)});
    if (window.innerWidth < 768) document.getElementById('sources')?.scrollIntoView({behavior: 'smooth', block: 'start'});
  }, true);
}
"""

SCROLL_TO_MARK_JS = """
() => { setTimeout(() => {
  const m = document.querySelector('#sources mark.src-quote');
  const box = m && m.closest('.src-text');
  if (m && box) box.scrollTop = Math.max(0, m.offsetTop - box.offsetTop - box.clientHeight / 3);
}, 60); }
"""

CSS = """
.gradio-container { max-width: 1280px !important; }
#title h2 { margin: 0; }
.status-line { color: var(--body-text-color-subdued); font-size: 0.9em; margin-bottom: 4px; }
#sources .src { display: flex; flex-direction: column; gap: 6px; }
#sources .src-head { font-size: 1.05em; }
#sources .src-label { color: var(--body-text-color-subdued); }
#sources .src-meta { color: var(--body-text-color-subdued); font-size: 0.85em; overflow-wrap: anywhere; }
#sources .src-text { white-space: pre-wrap; line-height: 1.5; max-height: 420px; overflow-y: auto;
  border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px; }
#sources .src-note { color: var(--error-text-color); font-size: 0.9em; }
#sources mark.src-quote { background: #ffe066; color: #000; padding: 0 2px; border-radius: 2px; }
#sources strong.src-answer { background: #ffb703; font-weight: 700; }
#sources .src-empty { color: var(--body-text-color-subdued); padding: 10px; }
#sources { min-height: 140px; }
.status-table th { text-align: left; padding-right: 12px; white-space: nowrap; }
.status-table td { overflow-wrap: anywhere; }
#docs { max-height: 620px; overflow-y: auto; }
.docs-count, .docs-counts { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 4px 0; }
.docs-table .nowrap, .docs-table .doc-id { white-space: nowrap; }
.docs-table { width: 100%; border-collapse: collapse; font-size: 0.92em; }
.docs-table th, .docs-table td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
.docs-table .num { text-align: right; }
.docs-table .src-path { overflow-wrap: anywhere; color: var(--body-text-color-subdued); }
.uploads .up-refused { color: var(--error-text-color); }
/* A long job's one progress bar shows in its message under the button: room for it while it runs. */
#rebuild-msg:has(.pending), #add-url-msg:has(.pending), #sources-msg:has(.pending), #upload-msg:has(.pending) {
  min-height: 64px; }
"""


def create_app(library: Library, *, mcp: bool = False) -> gr.Blocks:
    """Build the Blocks app around a library (nothing is started).

    Args:
        library: the index to answer from, upload to and rebuild.
        mcp: also register the JSON-returning `ask` and `search` functions that become MCP tools.

    Returns:
        the gr.Blocks; start it with launch().
    """
    settings = library.settings
    threshold = library.index.settings.abstain_threshold
    default_k = library.index.settings.k

    def _label(d) -> str:
        meta = render.about(d.date, d.section, d.outlet)
        return f"{d.title[:80]} ({d.id}{' · ' + meta if meta else ''})"

    def _picked_choices(typed: str, picked: list[str] | None) -> list[tuple[str, str]]:
        """The picker's choices: the articles already picked, then those matching what was typed (a few only)."""
        chosen = [d for d in (library.index.catalog.document(i) for i in (picked or [])) if d is not None]
        found = library.find_articles(typed, limit=20)
        seen: set[str] = set()
        out = []
        for d in [*chosen, *found]:
            if d.id not in seen:
                seen.add(d.id)
                out.append((_label(d), d.id))
        return out

    def _value_choices(values: dict[str, int]) -> list[tuple[str, str]]:
        return [(f"{name} ({count})", name) for name, count in sorted(values.items(), key=lambda kv: kv[0].casefold())]

    def _render_ref(turns: list[Answer], ref: str | None, whole: bool) -> str:
        doc_id = render.parse_doc_ref(ref)
        if doc_id is not None:
            doc = library.document(doc_id)
            if doc is None:
                return "<div class='src-empty'>This article is no longer in the index.</div>"
            return render.excerpt_html(excerpt(doc, 0, 0, whole=True), "article")
        parsed = render.parse_ref(ref)
        if not parsed or parsed[1] >= len(turns):
            return render.EMPTY_PANEL
        kind, turn, number = parsed
        answer = turns[turn]
        if kind == "cite":
            item = next((c for c in answer.citations if c.number == number), None)
            if item is None:
                return render.EMPTY_PANEL
            doc_id, start, end, quote, label = item.doc_id, item.start, item.end, item.quote, f"[{number}]"
            passages = answer.passages
            short = (item.answer_start, item.answer_end) if item.answer_start is not None else None
        else:
            if not 1 <= number <= len(answer.passages):
                return render.EMPTY_PANEL
            p = answer.passages[number - 1]
            doc_id, start, end, quote, label, passages = p.doc_id, p.start, p.end, p.text, f"passage {number}", ()
            short = None
        doc = library.document(doc_id)
        if doc is None:
            return (
                "<div class='src-empty'>This article is no longer in the index; ask again to search the "
                "current articles.</div>"
            )
        return render.excerpt_html(
            excerpt(doc, start, end, quote=quote, passages=passages, whole=whole, answer=short), label
        )

    def _radio(turns: list[Answer], ref: str | None):
        if not turns:
            return gr.Radio(choices=[], value=None, visible=False)
        turn = len(turns) - 1
        a = turns[turn]
        if a.citations:
            choices = [(render.source_choice(c), render.cite_ref(turn, c.number)) for c in a.citations]
        else:
            choices = [
                (f"passage {i}: {p.title[:70]}", render.passage_ref(turn, i)) for i, p in enumerate(a.passages, 1)
            ]
        values = {v for _, v in choices}
        return gr.Radio(
            choices=choices,
            value=ref if ref in values else None,
            visible=bool(choices),
            label="Sources of the last answer" if a.citations else "Nearest passages",
        )

    # -- handlers (UI only: private, not API endpoints) -----------------------------------------------------------

    def respond(
        message: str,
        history: list,
        turns: list[Answer],
        k: float,
        doc_filter: list[str] | None,
        whole: bool,
        since: str,
        until: str,
        sections: list[str] | None,
        outlets: list[str] | None,
        sort: str,
    ):
        if not (message or "").strip():
            return (gr.skip(),) * 6
        history = list(history or [])
        turns = list(turns or [])
        history.append({"role": "user", "content": render.md_escape(message)})
        try:
            # The chat's own earlier answers are the conversation: a follow-up is read in their light.
            answer = library.ask(
                message,
                int(k),
                doc_ids=doc_filter or None,
                since=since,
                until=until,
                section=sections or None,
                outlet=outlets or None,
                sort=sort,
                history=turns,
            )
        except RagError as exc:
            history.append({"role": "assistant", "content": f"**Could not answer:** {render.md_escape(str(exc))}"})
            return "", history, turns, gr.skip(), gr.skip(), gr.skip()
        turns.append(answer)
        turn = len(turns) - 1
        history.append({"role": "assistant", "content": render.answer_markdown(answer, turn, threshold)})
        ref = (
            render.cite_ref(turn, 1) if answer.citations else (render.passage_ref(turn, 1) if answer.passages else None)
        )
        return "", history, turns, _render_ref(turns, ref, whole), ref, _radio(turns, ref)

    def on_ref_click(turns: list[Answer], whole: bool, evt: gr.EventData):
        data = getattr(evt, "_data", None)
        ref = data.get("ref") if isinstance(data, dict) else None
        if render.parse_doc_ref(ref) is not None:
            # A Library row: the whole article in the Sources panel, on the Chat tab where the panel is.
            return _render_ref(turns, ref, True), gr.skip(), gr.skip(), gr.Tabs(selected="chat")
        if render.parse_ref(ref) is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return _render_ref(turns, ref, whole), ref, _radio(turns, ref), gr.skip()

    def on_radio(ref: str | None, turns: list[Answer], whole: bool):
        return _render_ref(turns, ref, whole), ref

    def on_whole(turns: list[Answer], ref: str | None, whole: bool):
        return _render_ref(turns, ref, whole)

    def new_chat():
        return [], [], render.EMPTY_PANEL, None, gr.Radio(choices=[], value=None, visible=False), ""

    def _listing(query: str, section: str | None, outlet: str | None, sort: str, descending: bool, page: float):
        try:
            listing = library.listing(
                query or "",
                section=section or None,
                outlet=outlet or None,
                sort=sort or "id",
                descending=bool(descending),
                page=int(page or 1),
                per_page=PER_PAGE,
            )
        except RagError as exc:
            return f"<p class='up-refused'>{html.escape(str(exc))}</p>", "", gr.skip()
        return render.listing_html(listing), render.counts_html(listing), listing.page

    def on_listing(query, section, outlet, sort, descending):
        return _listing(query, section, outlet, sort, descending, 1)

    def on_page(query, section, outlet, sort, descending, page, step: int):
        return _listing(query, section, outlet, sort, descending, max(1, int(page or 1) + step))

    def on_pick(typed: str, picked: list[str] | None):
        return gr.Dropdown(choices=_picked_choices(typed, picked), value=picked or [])

    def library_view(query="", section=None, outlet=None, sort="id", descending=False, page=1):
        status = library.status()
        sections, outlets = _value_choices(library.sections()), _value_choices(library.outlets())
        table, counts, page_box = _listing(query, section, outlet, sort, descending, page)
        return (
            render.status_html(status),
            table,
            render.status_line(status),
            counts,
            page_box,
            gr.Dropdown(choices=sections),
            gr.Dropdown(choices=outlets),
            gr.Dropdown(choices=sections),
            gr.Dropdown(choices=outlets),
        )

    def on_upload(files: list[str] | None):
        stored, refused = [], []
        for f in files or []:
            name = Path(getattr(f, "name", None) or str(f)).name
            try:
                stored.append(library.save_upload(str(f), name))
            except RagError as exc:
                refused.append(str(exc))
        status = library.status()
        return render.uploads_html(stored, refused), gr.File(value=None), render.status_html(status)

    # A long job (rebuild, add by URL, update sources) outputs only its own message, where its one progress bar
    # shows; the listing and status are refreshed afterwards (.then) from the tab as it is by then, so browsing
    # meanwhile is neither covered by progress bars nor undone when the job ends.

    def on_rebuild(progress=gr.Progress()):
        try:
            stats = library.rebuild(progress=_progress_fn(progress))
        except RagError as exc:
            return f"<p class='up-refused'>Rebuild failed: {html.escape(str(exc))}</p>"
        # Only the file's name: the page must not tell its readers where files live on the server.
        skipped = "".join(f"<li>{html.escape(Path(s.path).name)}: {html.escape(s.reason)}</li>" for s in stats.skipped)
        return (
            f"<p>Rebuilt: {stats.documents} articles ({stats.added} added, {stats.updated} updated, "
            f"{stats.removed} removed), {stats.chunks} passages in {stats.seconds:.1f} s. The chat now answers "
            f"from the new index.</p>" + (f"<p>Skipped:</p><ul>{skipped}</ul>" if skipped else "")
        )

    # -- articles from the web (rag.web through the library) --------------------------------------------------------

    def _sources_table() -> str:
        try:
            return render.web_sources_html(library.web_sources())
        except RagError as exc:
            return f"<p class='up-refused'>{html.escape(str(exc))}</p>"

    def _progress_fn(progress):
        labels = {"read": "Reading articles", "embed": "Reading and embedding articles", "write": "Writing the index"}

        def report(stage: str, done: int, total: int) -> None:
            progress((done, max(total, 1)), desc=labels.get(stage, stage))

        return report

    def on_add_urls(text, progress=gr.Progress()):
        try:
            msg = render.web_report_html(library.add_urls(text, progress=_progress_fn(progress)))
            text = ""
        except RagError as exc:
            msg = f"<p class='up-refused'>Not added: {html.escape(str(exc))}</p>"
        return msg, text, _sources_table()

    def on_source_add(url: str):
        try:
            src = library.add_web_source(url)
        except RagError as exc:
            return f"<p class='up-refused'>Not followed: {html.escape(str(exc))}</p>", url, _sources_table()
        msg = (
            f"<p>Following {html.escape(src.url)} ({html.escape(src.kind)}, {src.items} entries listed). "
            "“Update sources” fetches them.</p>"
        )
        return msg, "", _sources_table()

    def on_source_remove(url: str):
        try:
            src = library.remove_web_source(url)
        except RagError as exc:
            return f"<p class='up-refused'>{html.escape(str(exc))}</p>", url, _sources_table()
        return (
            f"<p>No longer following {html.escape(src.url)}; its articles stay in the index.</p>",
            "",
            _sources_table(),
        )

    def on_sources_update(progress=gr.Progress()):
        try:
            msg = render.web_report_html(library.update_web_sources(progress=_progress_fn(progress)))
        except RagError as exc:
            msg = f"<p class='up-refused'>Update failed: {html.escape(str(exc))}</p>"
        return msg, _sources_table()

    # -- API endpoints ---------------------------------------------------------------------------------------------

    def ask(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
        history: str = "",
    ) -> dict:
        """Answer a question with quoted sentences from the indexed articles, each with a citation, or abstain.

        Args:
            question: the question, in plain words.
            k: how many passages to retrieve (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (passages newest article first).
            history: the conversation so far, as JSON: a list of earlier turns, oldest first, each a question or
                {"question": ..., "answer": <an earlier answer>}; empty for a standalone question.

        Returns:
            Answer.to_dict(): text, abstained, confidence, citations (doc_id, title, source, start, end, quote, date,
            section, outlet), passages, read_as and follows (how a follow-up was read).
        """
        try:
            return library.ask(
                question,
                int(k),
                _ids(doc_ids),
                since=since,
                until=until,
                section=section,
                outlet=outlet,
                sort=sort,
                history=parse_history_json(history),
            ).to_dict()
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    def search(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
    ) -> list[dict]:
        """The k passages of the indexed articles that best match a query, best first, with scores.

        Args:
            question: what to look for.
            k: how many passages to return (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (newest article first).

        Returns:
            a list of passages (doc_id, title, source, start, end, text, score, date, section, outlet).
        """
        try:
            return [
                p.to_dict()
                for p in library.search(
                    question, int(k), _ids(doc_ids), since=since, until=until, section=section, outlet=outlet, sort=sort
                )
            ]
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    status = library.status()
    examples = library.examples()

    with gr.Blocks(title="Ask your articles") as demo:
        gr.Markdown("## Ask your articles", elem_id="title")
        status_top = gr.HTML(render.status_line(status), elem_id="status-line")
        turns = gr.State([])
        ref = gr.State(None)
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=320):
                        chatbot = gr.Chatbot(
                            show_label=False,
                            elem_id="chat",
                            placeholder="Answers quote the articles. Click a citation such as [1] to read it in its article.",
                            height=430,
                            latex_delimiters=[],
                            sanitize_html=True,
                            render_markdown=True,
                            buttons=["copy"],
                        )
                        with gr.Row(equal_height=True):
                            msg = gr.Textbox(
                                placeholder="Ask a question about the articles and press Enter",
                                show_label=False,
                                scale=6,
                                elem_id="msg",
                                max_lines=4,
                                autofocus=True,
                            )
                            ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="ask")
                        if examples:
                            gr.Examples(
                                examples=[[q] for q in examples], inputs=[msg], label="Examples", elem_id="examples"
                            )
                        with gr.Accordion("Settings", open=False, elem_id="settings"):
                            k_slider = gr.Slider(
                                1, 20, value=default_k, step=1, label="Passages to read (k)", elem_id="k"
                            )
                            with gr.Row():
                                since = gr.Textbox(
                                    label="From date",
                                    placeholder="YYYY-MM-DD, YYYY-MM or YYYY",
                                    elem_id="since",
                                    max_lines=1,
                                )
                                until = gr.Textbox(
                                    label="To date",
                                    placeholder="YYYY-MM-DD, YYYY-MM or YYYY",
                                    elem_id="until",
                                    max_lines=1,
                                )
                            with gr.Row():
                                section_filter = gr.Dropdown(
                                    choices=_value_choices(library.sections()),
                                    multiselect=True,
                                    value=[],
                                    label="Sections (empty = all)",
                                    elem_id="section-filter",
                                )
                                outlet_filter = gr.Dropdown(
                                    choices=_value_choices(library.outlets()),
                                    multiselect=True,
                                    value=[],
                                    label="Outlets (empty = all)",
                                    elem_id="outlet-filter",
                                )
                            doc_search = gr.Textbox(
                                label="Find articles to search in",
                                elem_id="doc-search",
                                placeholder="Type words of a title or an id",
                                max_lines=1,
                            )
                            doc_filter = gr.Dropdown(
                                choices=[],
                                multiselect=True,
                                value=[],
                                label="Only these articles (empty = all)",
                                elem_id="doc-filter",
                            )
                            sort = gr.Radio(
                                [("Most relevant", "relevance"), ("Newest first", "newest")],
                                value="relevance",
                                label="Order of the passages",
                                elem_id="sort",
                            )
                        new_btn = gr.Button("New chat", size="sm", elem_id="new-chat")
                    with gr.Column(scale=2, min_width=300):
                        gr.Markdown("### Sources")
                        panel = gr.HTML(render.EMPTY_PANEL, elem_id="sources", js_on_load=BRIDGE_JS)
                        whole = gr.Checkbox(False, label="Show the whole article", elem_id="whole")
                        cite_radio = gr.Radio(
                            choices=[], visible=False, label="Sources of the last answer", elem_id="cite-radio"
                        )
            with gr.Tab("Library", id="library") as lib_tab:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=320):
                        gr.Markdown("### Indexed articles")
                        with gr.Row(equal_height=True):
                            lib_search = gr.Textbox(
                                placeholder="Search titles, ids, sections, outlets",
                                show_label=False,
                                elem_id="lib-search",
                                max_lines=1,
                                scale=3,
                            )
                            lib_section = gr.Dropdown(
                                choices=_value_choices(library.sections()),
                                value=None,
                                label="Section",
                                elem_id="lib-section",
                                scale=1,
                            )
                            lib_outlet = gr.Dropdown(
                                choices=_value_choices(library.outlets()),
                                value=None,
                                label="Outlet",
                                elem_id="lib-outlet",
                                scale=1,
                            )
                        with gr.Row(equal_height=True):
                            lib_sort = gr.Dropdown(
                                [
                                    ("Id", "id"),
                                    ("Title", "title"),
                                    ("Date", "date"),
                                    ("Section", "section"),
                                    ("Outlet", "outlet"),
                                    ("Passages", "passages"),
                                ],
                                value="id",
                                label="Sort by",
                                elem_id="lib-sort",
                                scale=2,
                                min_width=120,
                            )
                            lib_desc = gr.Checkbox(False, label="Descending", elem_id="lib-desc", scale=1, min_width=90)
                            prev_btn = gr.Button("◀", size="sm", elem_id="lib-prev", scale=1, min_width=50)
                            lib_page = gr.Number(
                                1, label="Page", precision=0, minimum=1, elem_id="lib-page", scale=1, min_width=70
                            )
                            next_btn = gr.Button("▶", size="sm", elem_id="lib-next", scale=1, min_width=50)
                        first_table, first_counts, _ = _listing("", None, None, "id", False, 1)
                        docs_counts = gr.HTML(first_counts, elem_id="docs-counts")
                        docs_table = gr.HTML(first_table, elem_id="docs")
                    with gr.Column(scale=2, min_width=300):
                        status_box = gr.HTML(render.status_html(status), elem_id="index-status")
                        files = gr.File(
                            label=f"Add articles ({', '.join(UPLOAD_EXTENSIONS)}; up to "
                            f"{settings.max_upload_mb:g} MB each)",
                            file_count="multiple",
                            file_types=list(UPLOAD_EXTENSIONS),
                            elem_id="upload",
                        )
                        upload_msg = gr.HTML("", elem_id="upload-msg")
                        with gr.Row(equal_height=True):
                            url_box = gr.Textbox(
                                label="Add by URL",
                                placeholder="https://… (one or more, space- or line-separated)",
                                lines=1,
                                max_lines=4,
                                elem_id="add-url",
                                scale=3,
                            )
                            url_btn = gr.Button("Add by URL", elem_id="add-url-btn", scale=1, min_width=100)
                        url_msg = gr.HTML("", elem_id="add-url-msg")
                        rebuild_btn = gr.Button("Rebuild index", variant="primary", elem_id="rebuild")
                        rebuild_msg = gr.HTML("", elem_id="rebuild-msg")
                        gr.Markdown("### Feeds and sitemaps")
                        sources_table = gr.HTML(_sources_table(), elem_id="web-sources")
                        source_box = gr.Textbox(
                            label="Feed, sitemap or site URL",
                            max_lines=1,
                            elem_id="source-url",
                            placeholder="https://example.com/feed.xml",
                        )
                        with gr.Row():
                            add_src_btn = gr.Button("Follow", size="sm", elem_id="source-add")
                            remove_src_btn = gr.Button("Stop following", size="sm", elem_id="source-remove")
                            update_src_btn = gr.Button(
                                "Update sources", size="sm", variant="primary", elem_id="source-update"
                            )
                        sources_msg = gr.HTML("", elem_id="sources-msg")
            watched_tab(library, panel=panel, tabs=tabs)  # saved questions and the answers new articles gave them

        chat_inputs = [
            msg,
            chatbot,
            turns,
            k_slider,
            doc_filter,
            whole,
            since,
            until,
            section_filter,
            outlet_filter,
            sort,
        ]
        chat_outputs = [msg, chatbot, turns, panel, ref, cite_radio]
        msg.submit(
            respond,
            chat_inputs,
            chat_outputs,
            api_visibility="private",
            concurrency_id="chat",
            concurrency_limit=QUEUE_WORKERS,
        )
        ask_btn.click(
            respond,
            chat_inputs,
            chat_outputs,
            api_visibility="private",
            concurrency_id="chat",
            concurrency_limit=QUEUE_WORKERS,
        )
        panel.click(on_ref_click, [turns, whole], [panel, ref, cite_radio, tabs], api_visibility="private").then(
            None, None, None, js=SCROLL_TO_MARK_JS, api_visibility="private"
        )
        cite_radio.input(on_radio, [cite_radio, turns, whole], [panel, ref], api_visibility="private").then(
            None, None, None, js=SCROLL_TO_MARK_JS, api_visibility="private"
        )
        whole.input(on_whole, [turns, ref, whole], panel, api_visibility="private").then(
            None, None, None, js=SCROLL_TO_MARK_JS, api_visibility="private"
        )
        new_btn.click(new_chat, None, [chatbot, turns, panel, ref, cite_radio, msg], api_visibility="private")
        listing_inputs = [lib_search, lib_section, lib_outlet, lib_sort, lib_desc]
        listing_outputs = [docs_table, docs_counts, lib_page]
        view_outputs = [
            status_box,
            docs_table,
            status_top,
            docs_counts,
            lib_page,
            lib_section,
            lib_outlet,
            section_filter,
            outlet_filter,
        ]
        lib_tab.select(library_view, [*listing_inputs, lib_page], view_outputs, api_visibility="private")
        lib_tab.select(_sources_table, None, sources_table, api_visibility="private")
        for box in (lib_search,):
            box.submit(on_listing, listing_inputs, listing_outputs, api_visibility="private")
            box.change(
                on_listing, listing_inputs, listing_outputs, api_visibility="private", trigger_mode="always_last"
            )
        for box in (lib_section, lib_outlet, lib_sort, lib_desc):
            box.input(on_listing, listing_inputs, listing_outputs, api_visibility="private")
        prev_btn.click(
            lambda *a: on_page(*a, -1), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
        )
        next_btn.click(
            lambda *a: on_page(*a, 1), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
        )
        lib_page.submit(
            lambda *a: on_page(*a, 0), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
        )
        doc_search.change(
            on_pick, [doc_search, doc_filter], doc_filter, api_visibility="private", trigger_mode="always_last"
        )
        files.upload(
            on_upload, files, [upload_msg, files, status_box], api_visibility="private", show_progress_on=[upload_msg]
        )

        def job(trigger, fn, inputs, outputs, message, refresh: bool = True):
            """A long job: one at a time, its progress on its message only, then the tab refreshed."""
            event = trigger(
                fn,
                inputs,
                outputs,
                api_visibility="private",
                concurrency_id="rebuild",
                concurrency_limit=1,
                show_progress_on=[message],
            )
            if refresh:
                event.then(
                    library_view,
                    [*listing_inputs, lib_page],
                    view_outputs,
                    api_visibility="private",
                    show_progress="hidden",
                )

        job(rebuild_btn.click, on_rebuild, None, [rebuild_msg], rebuild_msg)
        for trigger in (url_btn.click, url_box.submit):
            job(trigger, on_add_urls, [url_box], [url_msg, url_box, sources_table], url_msg)
        job(
            add_src_btn.click,
            on_source_add,
            [source_box],
            [sources_msg, source_box, sources_table],
            sources_msg,
            refresh=False,
        )
        job(
            remove_src_btn.click,
            on_source_remove,
            [source_box],
            [sources_msg, source_box, sources_table],
            sources_msg,
            refresh=False,
        )
        job(update_src_btn.click, on_sources_update, None, [sources_msg, sources_table], sources_msg)

        # With --mcp, Gradio turns public endpoints into MCP tools named after the function and returns str() of the
        # result, so the tools return JSON text; the dict-returning endpoints stay callable but leave the tool list.
        api_visibility = "undocumented" if mcp else "public"
        gr.api(ask, api_name="ask", api_visibility=api_visibility)
        gr.api(search, api_name="search", api_visibility=api_visibility)
        if mcp:
            ask_tool, search_tool = _mcp_tools(library, default_k)
            gr.api(ask_tool, api_name="ask_json")
            gr.api(search_tool, api_name="search_json")
    return demo


def _mcp_tools(library: Library, default_k: int):
    def ask(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
        history: str = "",
    ) -> str:
        """Answer a question with sentences quoted from the indexed articles, each cited by article and character span.

        Args:
            question: the question, in plain words.
            k: how many passages to retrieve (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (passages newest article first).
            history: the conversation so far, as JSON text: a list of the earlier questions, oldest first, each a
                string or {"question": ..., "answer": <the JSON this tool returned for it>}, so a follow-up such as
                "How old is he?" is read with them; empty for a standalone question.

        Returns:
            JSON: {text, abstained, confidence, short_answer, citations: [{number, doc_id, title, source, start, end,
            quote, answer, answer_start, answer_end, date, section, outlet}], passages, read_as, follows}. `answer` is
            the short answer inside the quote (document offsets answer_start/answer_end), when the reader found one.
            When abstained is true, no passage answers the question and the nearest passages are listed instead.
            `read_as` is the question as it was read when it followed an earlier turn (`follows`: which one).
        """
        try:
            return json.dumps(
                library.ask(
                    question,
                    int(k),
                    _ids(doc_ids),
                    since=since,
                    until=until,
                    section=section,
                    outlet=outlet,
                    sort=sort,
                    history=parse_history_json(history),
                ).to_dict(),
                ensure_ascii=False,
            )
        except RagError as exc:
            return json.dumps({"error": str(exc)})

    def search(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
    ) -> str:
        """Find the passages of the indexed articles that best match a query, best first, with scores.

        Args:
            question: what to look for.
            k: how many passages to return (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (newest article first).

        Returns:
            JSON list of passages: [{doc_id, title, source, start, end, text, score, date, section, outlet}].
        """
        try:
            return json.dumps(
                [
                    p.to_dict()
                    for p in library.search(
                        question,
                        int(k),
                        _ids(doc_ids),
                        since=since,
                        until=until,
                        section=section,
                        outlet=outlet,
                        sort=sort,
                    )
                ],
                ensure_ascii=False,
            )
        except RagError as exc:
            return json.dumps({"error": str(exc)})

    return ask, search


def _check_access(mcp: bool, auth: Credentials | None) -> None:
    if mcp and auth is not None:
        raise ConfigError(
            "--mcp cannot be combined with --auth: Gradio's MCP endpoint does not use the login, so it would list "
            "the tools to anyone and refuse every call; run the MCP server on 127.0.0.1 without --auth instead"
        )


def launch(
    demo: gr.Blocks,
    library: Library,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    mcp: bool = False,
    auth: Credentials | None = None,
    cors_origins: Sequence[str] | None = None,
    block: bool = True,
) -> Served:
    """Start the app and its JSON API (/api): loopback by default, uploads capped, no files served from disk,
    optional login (the same one for the page and the API).

    Args:
        cors_origins: origins whose pages may call the API (default: RAG_CORS_ORIGINS; none: no CORS).
        block: wait until the server stops (False returns at once, for tests).

    Returns:
        the running server (close() stops it).

    Raises:
        ConfigError: --mcp together with a login (Gradio's MCP endpoint is not behind the login), a bad
            RAG_CORS_ORIGINS, or an address that cannot be bound.
    """
    _check_access(mcp, auth)
    origins = resolve_cors_origins() if cors_origins is None else list(cors_origins)
    warning = exposure_warning(host, auth, share)
    if warning:
        print(warning, file=sys.stderr)
    demo.queue(default_concurrency_limit=QUEUE_WORKERS)
    api = create_api(library, credentials=auth, workers=QUEUE_WORKERS, cors_origins=origins)
    gradio_options = dict(
        auth=auth.as_tuple() if auth else None,
        auth_message="This index is protected: sign in." if auth else None,
        mcp_server=mcp,
        max_file_size=int(library.settings.max_upload_mb * 1024 * 1024),
        # Nothing on disk is served except Gradio's own upload cache: no allowed_paths, and the article and index
        # folders are blocked explicitly in case the working directory is one of them.
        allowed_paths=[],
        blocked_paths=[
            str(library.index_dir.resolve()),
            str(library.uploads_dir.resolve()),
            str(library.web().files.folder.resolve()),
        ],
        css=CSS,
        show_error=False,
        ssr_mode=False,
        pwa=False,
        enable_monitoring=False,
    )
    served = start(
        demo,
        api,
        host=host,
        port=port,
        gradio_options=gradio_options,
        share=share,
        quiet=not block,
        routes=[feed_route(library, auth)],
    )
    if block:
        served.wait()
    return served


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    share: bool = False,
    mcp: bool = False,
    auth: str | None = None,
) -> int:
    """`rag serve`: open the index, build the app and serve it until interrupted.

    Args:
        settings: engine settings (index_dir names the index to serve).
        host: address to bind (default 127.0.0.1: this machine only).
        port: port (default 7860).
        share: ask Gradio for a public link (off unless asked for).
        mcp: also serve the ask and search tools over MCP at /gradio_api/mcp/.
        auth: "user:password"; else RAG_AUTH or RAG_AUTH_FILE; none means no login.

    Returns:
        the exit code.
    """
    credentials = resolve_auth(auth)
    _check_access(mcp, credentials)  # before the model loads
    origins = resolve_cors_origins()
    library = Library(settings.index_dir, settings)
    demo = create_app(library, mcp=mcp)
    launch(
        demo,
        library,
        host=host or DEFAULT_HOST,
        port=port or DEFAULT_PORT,
        share=share,
        mcp=mcp,
        auth=credentials,
        cors_origins=origins,
        block=True,
    )
    return 0
