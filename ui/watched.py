"""The "Watched questions" tab: save questions, see the answers new articles gave them, open one in the Sources panel.

Built by `watched_tab()` inside the app's tabs; everything it does goes through rag.watch.store (the store that
`rag questions` uses) and the library. Its label counts the answers not seen yet, refreshed every REFRESH_S
seconds, so answers recorded by a build elsewhere (`rag watch`, `rag sources update`) show up too; opening the tab
marks them seen. An answer's link opens its quote, highlighted in its article, in the Sources panel of the chat, as
a citation does; `<app>/#answer-<id>` (the Atom feed's link for an article without a web address) does the same.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import gradio as gr

from rag.errors import RagError
from rag.library.excerpts import excerpt
from rag.library.library import Library
from rag.watch.store import SavedQuestion, WatchedAnswer, WatchStore
from ui import render
from ui.render import Skip

__all__ = ["watched_tab", "questions_html", "tab_label", "REFRESH_S"]

REFRESH_S = 15.0
_REF = re.compile(r"^(answer|unwatch)-(\d{1,9})$")

# Clicks on an answer or on "Stop watching" become this component's click event with the link as data.
WATCH_JS = """
element.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="#answer-"], a[href^="#unwatch-"]');
  if (!a) return;
  e.preventDefault(); e.stopPropagation();
  trigger('click', {ref: a.getAttribute('href').slice(1)});
}, true);
"""
# At page load, the address's fragment (the feed links to <app>/#answer-<id>) is handed to the server.
FRAGMENT_JS = "(ignored) => window.location.hash"

CSS = """
.watch-q { border-bottom: 1px solid var(--border-color-primary); padding: 8px 0; }
.watch-meta { color: var(--body-text-color-subdued); font-size: 0.85em; }
.watch-a { margin: 6px 0 6px 14px; }
.watch-a.new::before { content: "new"; background: #ffe066; color: #000; font-size: 0.75em; padding: 0 4px;
  border-radius: 3px; margin-right: 6px; }
.watch-quote { color: var(--body-text-color); }
.watch-none { color: var(--body-text-color-subdued); margin-left: 14px; font-size: 0.9em; }
.watch-remove { font-size: 0.85em; margin-left: 8px; }
.watch-error { color: var(--error-text-color); }
"""


def tab_label(unseen: int) -> str:
    return f"Watched questions ({unseen} new)" if unseen else "Watched questions"


def _filters(q: SavedQuestion) -> str:
    parts = [f"section {', '.join(q.sections)}"] if q.sections else []
    parts += [f"outlet {', '.join(q.outlets)}"] if q.outlets else []
    parts += [f"min confidence {q.min_confidence:g}"] if q.min_confidence is not None else []
    return " · ".join(parts + [f"saved {q.added_at[:10]}"])


def _answer_html(a: WatchedAnswer, new: bool) -> str:
    e = html.escape
    said = a.short_answer or a.quote
    about = ", ".join(x for x in (a.title, (a.date or "")[:10]) if x)
    link = ""
    if a.url and a.url.startswith(("http://", "https://")):
        link = f" · <a href='{e(a.url, quote=True)}' target='_blank' rel='noopener noreferrer'>{e(a.url)}</a>"
    quote = a.quote if len(a.quote) <= 240 else a.quote[:237] + "…"
    return (
        f"<li class='watch-a{' new' if new else ''}' data-answer='{a.id}'>"
        f"<a href='#answer-{a.id}'>{e(said)}</a> <span class='watch-quote'>— “{e(quote)}”</span><br>"
        f"<span class='watch-meta'>{e(about)} · confidence {a.confidence:.2f} · recorded "
        f"{e(a.recorded_at.replace('T', ' ').rstrip('Z'))} UTC</span>{link}</li>"
    )


def questions_html(questions: Sequence[SavedQuestion], answers: Sequence[WatchedAnswer], seen_through: int) -> str:
    """Each saved question with its answers, newest first; answers after `seen_through` are marked new."""
    e = html.escape
    if not questions:
        return (
            "<div class='watch-none'>No watched questions yet. Save one above: every build that adds or changes "
            "articles asks it against them, and an answer shows here once per article.</div>"
        )
    by_q: dict[int, list[WatchedAnswer]] = {}
    for a in answers:
        by_q.setdefault(a.question_id, []).append(a)
    out = ["<div class='watch-list'>"]
    for q in sorted(questions, key=lambda q: -q.id):
        mine = sorted(by_q.get(q.id, []), key=lambda a: -a.id)
        out.append(
            f"<div class='watch-q' data-question='{q.id}'><b>[{q.id}] {e(q.question)}</b> "
            f"<span class='watch-meta'>{e(_filters(q))} · {len(mine)} answer{'s' if len(mine) != 1 else ''}"
            f"</span><a class='watch-remove' href='#unwatch-{q.id}'>Stop watching</a>"
        )
        if mine:
            out.append("<ul>" + "".join(_answer_html(a, a.id > seen_through) for a in mine) + "</ul>")
        else:
            out.append("<div class='watch-none'>No answer yet.</div>")
        out.append("</div>")
    out.append(
        "</div><p class='watch-meta'>Follow the new answers in a feed reader: "
        "<a href='answers.xml' target='_blank'>answers.xml</a> (Atom; the app's login).</p>"
    )
    return "".join(out)


def _answer_panel(library: Library, a: WatchedAnswer) -> str:
    """The Sources panel for an answer: its first quote highlighted in its article, the short answer marked."""
    c = a.citation
    doc = library.document(a.doc_id)
    if doc is None:
        return "<div class='src-empty'>This article is no longer in the index.</div>"
    start, end = int(c.get("start", 0)), int(c.get("end", 0))
    short = (c["answer_start"], c["answer_end"]) if c.get("answer_start") is not None else None
    return render.excerpt_html(excerpt(doc, start, end, quote=a.quote, answer=short), f"[{a.question_id}] answer")


def watched_tab(library: Library, *, panel: gr.HTML, tabs: gr.Tabs) -> gr.Tab:
    """The tab, built inside `tabs`; an opened answer goes to `panel` (the chat's Sources panel) on the Chat tab."""
    store = WatchStore(library.index_dir)

    def listing(shown_seen: int | None = None) -> str:
        try:
            questions, answers = store.questions(), store.answers()
        except RagError as exc:
            return f"<p class='watch-error'>{html.escape(str(exc))}</p>"
        seen = _seen(store) if shown_seen is None else shown_seen
        return questions_html(questions, answers, seen)

    def unseen() -> int:
        try:
            return store.unseen_count()
        except RagError:
            return 0

    with gr.Tab(tab_label(unseen()), id="watched", elem_id="watched-tab") as tab:
        shown_seen = gr.State(None)
        gr.Markdown("### Watched questions")
        gr.Markdown(
            "Save a question: each build that adds or changes articles (an upload and Rebuild, Add by URL, "
            "a feed update, `rag watch`) asks it against them, and an answer that reaches its confidence "
            "is shown here once per article.",
            elem_classes=["watch-meta"],
        )
        with gr.Row(equal_height=True):
            box = gr.Textbox(
                label="Question to watch",
                placeholder="Who will run Unilever?",
                max_lines=2,
                scale=5,
                elem_id="watch-question",
            )
            add_btn = gr.Button("Watch", variant="primary", scale=1, min_width=100, elem_id="watch-add")
        # Sorted here: inside the call, the choices' declared type would be what `sorted` is asked to return.
        section_choices = sorted(library.sections(), key=str.casefold)
        outlet_choices = sorted(library.outlets(), key=str.casefold)
        with gr.Row(equal_height=True):
            # Text, not a number box: empty must stay empty (the index's threshold), never become 0.
            conf = gr.Textbox(
                label="Min confidence, 0-1 (empty: the index's)",
                max_lines=1,
                scale=1,
                min_width=140,
                elem_id="watch-min",
            )
            sections = gr.Dropdown(
                choices=section_choices,
                multiselect=True,
                value=[],
                allow_custom_value=True,
                label="Sections (empty = all)",
                elem_id="watch-sections",
                scale=2,
            )
            outlets = gr.Dropdown(
                choices=outlet_choices,
                multiselect=True,
                value=[],
                allow_custom_value=True,
                label="Outlets (empty = all)",
                elem_id="watch-outlets",
                scale=2,
            )
        msg = gr.HTML("", elem_id="watch-msg")
        board = gr.HTML(listing(), elem_id="watched", js_on_load=WATCH_JS, css_template=CSS)
        timer = gr.Timer(REFRESH_S)
        fragment = gr.Textbox(visible=False)

    def on_open(_: gr.SelectData | None = None) -> tuple[str, int, gr.Tab]:
        before = _seen(store)
        page = listing(before)
        try:
            store.mark_seen()
        except RagError:
            pass
        return page, before, gr.Tab(label=tab_label(0))

    def on_tick(shown: int | None) -> tuple[str, gr.Tab]:
        return listing(shown), gr.Tab(label=tab_label(unseen()))

    def on_add(
        text: str, min_conf: str | None, secs: list[str] | None, outs: list[str] | None, shown: int | None
    ) -> tuple[str, str | Skip, str]:
        from rag.index import indexdir

        try:
            version = indexdir.require_index(library.index_dir)
            baseline = (version.name, indexdir.read_manifest(version).get("documents") or {})
            q = store.add(
                text or "",
                min_confidence=(min_conf or "").strip() or None,
                section=secs or None,
                outlet=outs or None,
                max_chars=library.settings.max_question_chars,
                baseline=baseline,
            )
        except RagError as exc:
            return f"<p class='watch-error'>Not saved: {html.escape(str(exc))}</p>", gr.skip(), listing(shown)
        return (
            f"<p>Watching [{q.id}] {html.escape(q.question)}: the next build that adds or changes articles asks "
            "it.</p>",
            "",
            listing(shown),
        )

    def on_click(
        shown: int | None, evt: gr.EventData
    ) -> tuple[str | Skip, gr.Tabs | Skip, str | Skip, str | Skip, gr.Tab | Skip]:
        data = getattr(evt, "_data", None)
        m = _REF.match(data.get("ref", "")) if isinstance(data, dict) else None
        if m is None:
            return (gr.skip(),) * 5
        kind, number = m.group(1), int(m.group(2))
        if kind == "unwatch":
            try:
                q = store.remove(number)
                note = f"<p>No longer watching [{q.id}] {html.escape(q.question)}; its answers are removed.</p>"
            except RagError as exc:
                note = f"<p class='watch-error'>{html.escape(str(exc))}</p>"
            return gr.skip(), gr.skip(), note, listing(shown), gr.Tab(label=tab_label(unseen()))
        found = next((a for a in store.answers() if a.id == number), None)
        if found is None:
            return (
                gr.skip(),
                gr.skip(),
                "<p class='watch-error'>That answer is no longer recorded.</p>",
                listing(shown),
                gr.skip(),
            )
        return _answer_panel(library, found), gr.Tabs(selected="chat"), gr.skip(), gr.skip(), gr.skip()

    def on_load() -> tuple[str, gr.Tab]:
        return listing(), gr.Tab(label=tab_label(unseen()))

    def on_fragment(hash_: str | None) -> tuple[str | Skip, gr.Tabs | Skip]:
        m = re.fullmatch(r"#answer-(\d{1,9})", hash_ or "")
        found = next((a for a in store.answers() if a.id == int(m.group(1))), None) if m else None
        if found is None:
            return gr.skip(), gr.skip()
        return _answer_panel(library, found), gr.Tabs(selected="chat")

    gr.on(None, on_load, None, [board, tab], api_visibility="private")  # each page load: as the store is now
    gr.on(None, on_fragment, fragment, [panel, tabs], js=FRAGMENT_JS, api_visibility="private")
    tab.select(on_open, None, [board, shown_seen, tab], api_visibility="private")
    timer.tick(on_tick, shown_seen, [board, tab], api_visibility="private")
    add_btn.click(on_add, [box, conf, sections, outlets, shown_seen], [msg, box, board], api_visibility="private")
    box.submit(on_add, [box, conf, sections, outlets, shown_seen], [msg, box, board], api_visibility="private")
    board.click(on_click, shown_seen, [panel, tabs, msg, board, tab], api_visibility="private")
    return tab


def _seen(store: WatchStore) -> int:
    try:
        return store.seen_through()
    except RagError:
        return 0
