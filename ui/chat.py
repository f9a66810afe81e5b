"""The Chat tab: answers that quote the articles with citations, the Sources panel that shows a citation in its
article, and the settings of a question (passages, dates, sections, outlets, articles, order).

Built by `chat_tab()` inside the app's tabs (ui.app); everything it does goes through rag.library.library.Library.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rag.errors import RagError
from rag.index.catalog import DocumentInfo
from rag.library.excerpts import excerpt
from rag.library.library import Library
from rag.types import Answer, Document
from ui import render
from ui.render import Skip

__all__ = ["ChatTab", "chat_tab", "value_choices"]

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


@dataclass
class ChatTab:
    """The components of the Chat tab that the other tabs update: the Sources panel and the section and outlet
    filters (whose choices follow the index)."""

    panel: gr.HTML
    section_filter: gr.Dropdown
    outlet_filter: gr.Dropdown


def value_choices(values: dict[str, int]) -> list[tuple[str, str]]:
    """A filter's choices from counts of its values: ("name (count)", name), in alphabetical order, any case."""
    return [(f"{name} ({count})", name) for name, count in sorted(values.items(), key=lambda kv: kv[0].casefold())]


def chat_tab(library: Library, *, tabs: gr.Tabs, turns: gr.State, ref: gr.State, workers: int) -> ChatTab:
    """Lay out the Chat tab inside `tabs` and wire its events.

    Args:
        library: the index to answer from.
        tabs: the app's tabs (a click on a Library row selects the Chat tab).
        turns: the conversation's answers so far (a list of Answer); ref: the citation shown in the Sources panel.
        workers: questions answered at once; more wait their turn.

    Returns:
        the components the other tabs update.
    """
    threshold = library.index.settings.abstain_threshold
    default_k = library.index.settings.k

    def _label(d: Document | DocumentInfo) -> str:
        meta = render.about(d.date, d.section, d.outlet)
        return f"{d.title[:80]} ({d.id}{' · ' + meta if meta else ''})"

    def _picked_choices(typed: str, picked: list[str] | None) -> list[tuple[str, str]]:
        """The picker's choices: the articles already picked, then those matching what was typed (a few only)."""
        chosen = [d for d in (library.index.catalog.document(i) for i in (picked or [])) if d is not None]
        found = library.find_articles(typed, limit=20)
        seen: set[str] = set()
        out = []
        articles: list[Document | DocumentInfo] = [*chosen, *found]
        for d in articles:
            if d.id not in seen:
                seen.add(d.id)
                out.append((_label(d), d.id))
        return out

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
            short = (
                (item.answer_start, item.answer_end)
                if item.answer_start is not None and item.answer_end is not None
                else None
            )
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

    def _radio(turns: list[Answer], ref: str | None) -> gr.Radio:
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
    ) -> tuple[
        str | Skip, list[dict[str, str]] | Skip, list[Answer] | Skip, str | Skip, str | None | Skip, gr.Radio | Skip
    ]:
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

    def on_ref_click(
        turns: list[Answer], whole: bool, evt: gr.EventData
    ) -> tuple[str | Skip, str | None | Skip, gr.Radio | Skip, gr.Tabs | Skip]:
        data = getattr(evt, "_data", None)
        ref = data.get("ref") if isinstance(data, dict) else None
        if render.parse_doc_ref(ref) is not None:
            # A Library row: the whole article in the Sources panel, on the Chat tab where the panel is.
            return _render_ref(turns, ref, True), gr.skip(), gr.skip(), gr.Tabs(selected="chat")
        if render.parse_ref(ref) is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return _render_ref(turns, ref, whole), ref, _radio(turns, ref), gr.skip()

    def on_radio(ref: str | None, turns: list[Answer], whole: bool) -> tuple[str, str | None]:
        return _render_ref(turns, ref, whole), ref

    def on_whole(turns: list[Answer], ref: str | None, whole: bool) -> str:
        return _render_ref(turns, ref, whole)

    def new_chat() -> tuple[list[dict[str, str]], list[Answer], str, None, gr.Radio, str]:
        return [], [], render.EMPTY_PANEL, None, gr.Radio(choices=[], value=None, visible=False), ""

    def on_pick(typed: str, picked: list[str] | None) -> gr.Dropdown:
        return gr.Dropdown(choices=_picked_choices(typed, picked), value=picked or [])

    examples = library.examples()

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
                    gr.Examples(examples=[[q] for q in examples], inputs=[msg], label="Examples", elem_id="examples")
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    k_slider = gr.Slider(1, 20, value=default_k, step=1, label="Passages to read (k)", elem_id="k")
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
                            choices=value_choices(library.sections()),
                            multiselect=True,
                            value=[],
                            label="Sections (empty = all)",
                            elem_id="section-filter",
                        )
                        outlet_filter = gr.Dropdown(
                            choices=value_choices(library.outlets()),
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
        concurrency_limit=workers,
    )
    ask_btn.click(
        respond,
        chat_inputs,
        chat_outputs,
        api_visibility="private",
        concurrency_id="chat",
        concurrency_limit=workers,
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
    doc_search.change(
        on_pick, [doc_search, doc_filter], doc_filter, api_visibility="private", trigger_mode="always_last"
    )
    return ChatTab(panel=panel, section_filter=section_filter, outlet_filter=outlet_filter)
