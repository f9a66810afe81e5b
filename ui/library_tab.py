"""The Library tab: the indexed articles (search, section, outlet, sort, pages), the index status, uploads, the
rebuild, articles added by URL, and the feeds and sitemaps followed.

Built by `library_tab()` inside the app's tabs (ui.app); everything it does goes through rag.library.library.Library.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
from gradio.components import Component
from gradio.events import Dependency

from rag.errors import RagError
from rag.ingest.uploads import UPLOAD_EXTENSIONS
from rag.library.library import Library, LibraryStatus
from ui import render
from ui.chat import ChatTab, value_choices
from ui.render import Skip

__all__ = ["library_tab", "PER_PAGE"]

PER_PAGE = 50  # rows of the Library table per page


def library_tab(library: Library, *, status: LibraryStatus, status_top: gr.HTML, chat: ChatTab) -> None:
    """Lay out the Library tab inside the app's tabs and wire its events.

    Args:
        library: the index to list, upload to and rebuild.
        status: the index's status as the page opens.
        status_top: the status line above the tabs, refreshed with the tab.
        chat: the Chat tab, whose section and outlet filters follow the index.
    """
    settings = library.settings

    def _listing(
        query: str, section: str | None, outlet: str | None, sort: str, descending: bool, page: float | None
    ) -> tuple[str, str, int | Skip]:
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

    def on_page(
        query: str,
        section: str | None,
        outlet: str | None,
        sort: str,
        descending: bool,
        page: float | None,
        *,
        step: int,
    ) -> tuple[str, str, int | Skip]:
        return _listing(query, section, outlet, sort, descending, max(1, int(page or 1) + step))

    def library_view(query="", section=None, outlet=None, sort="id", descending=False, page=1):
        status = library.status()
        sections, outlets = value_choices(library.sections()), value_choices(library.outlets())
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

    def on_upload(files: list[str] | None) -> tuple[str, gr.File, str]:
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

    def on_source_add(url: str) -> tuple[str, str, str]:
        try:
            src = library.add_web_source(url)
        except RagError as exc:
            return f"<p class='up-refused'>Not followed: {html.escape(str(exc))}</p>", url, _sources_table()
        msg = (
            f"<p>Following {html.escape(src.url)} ({html.escape(src.kind)}, {src.items} entries listed). "
            "“Update sources” fetches them.</p>"
        )
        return msg, "", _sources_table()

    def on_source_remove(url: str) -> tuple[str, str, str]:
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
                        choices=value_choices(library.sections()),
                        value=None,
                        label="Section",
                        elem_id="lib-section",
                        scale=1,
                    )
                    lib_outlet = gr.Dropdown(
                        choices=value_choices(library.outlets()),
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
                    label=f"Add articles ({', '.join(UPLOAD_EXTENSIONS)}; up to {settings.max_upload_mb:g} MB each)",
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
                    update_src_btn = gr.Button("Update sources", size="sm", variant="primary", elem_id="source-update")
                sources_msg = gr.HTML("", elem_id="sources-msg")

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
        chat.section_filter,
        chat.outlet_filter,
    ]
    lib_tab.select(library_view, [*listing_inputs, lib_page], view_outputs, api_visibility="private")
    lib_tab.select(_sources_table, None, sources_table, api_visibility="private")
    for box in (lib_search,):
        box.submit(on_listing, listing_inputs, listing_outputs, api_visibility="private")
        box.change(on_listing, listing_inputs, listing_outputs, api_visibility="private", trigger_mode="always_last")
    for control in (lib_section, lib_outlet, lib_sort, lib_desc):
        control.input(on_listing, listing_inputs, listing_outputs, api_visibility="private")
    prev_btn.click(
        lambda *a: on_page(*a, step=-1), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
    )
    next_btn.click(
        lambda *a: on_page(*a, step=1), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
    )
    lib_page.submit(
        lambda *a: on_page(*a, step=0), [*listing_inputs, lib_page], listing_outputs, api_visibility="private"
    )
    files.upload(
        on_upload, files, [upload_msg, files, status_box], api_visibility="private", show_progress_on=[upload_msg]
    )

    def job(
        trigger: Callable[..., Dependency],
        fn: Callable[..., object],
        inputs: Sequence[Component] | None,
        outputs: Sequence[Component],
        message: gr.HTML,
        refresh: bool = True,
    ) -> None:
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
