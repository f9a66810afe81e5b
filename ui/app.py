"""The web app: a chat that answers with quoted, cited sentences, a sources panel, and a library view (Gradio).

All engine work goes through rag.library.library.Library. This module puts the tabs (ui.chat, ui.library_tab,
ui.watched) and the ask and search endpoints (ui.endpoints) together, and serves them beside the JSON API.

Run with `rag serve [--index index/] [--host 127.0.0.1] [--port 7860] [--mcp] [--auth user:password]`.
"""

from __future__ import annotations

import os

# Before gradio is imported: no usage reporting, no model hub; this app works offline.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import gradio as gr  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.library.library import Library  # noqa: E402
from ui import render  # noqa: E402
from ui.access import DEFAULT_HOST, Credentials, exposure_warning, resolve_auth, resolve_cors_origins  # noqa: E402
from ui.api import create_api  # noqa: E402
from ui.atom import feed_route  # noqa: E402
from ui.chat import chat_tab  # noqa: E402
from ui.endpoints import api_functions, mcp_tools  # noqa: E402
from ui.library_tab import library_tab  # noqa: E402
from ui.server import Served, start  # noqa: E402
from ui.watched import watched_tab  # noqa: E402

__all__ = ["create_app", "launch", "serve", "DEFAULT_PORT"]

DEFAULT_PORT = 7860
QUEUE_WORKERS = 4  # questions answered at once, by the chat and by the JSON API alike; more wait their turn


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
    default_k = library.index.settings.k
    ask, search = api_functions(library, default_k)
    status = library.status()

    with gr.Blocks(title="Ask your articles") as demo:
        gr.Markdown("## Ask your articles", elem_id="title")
        status_top = gr.HTML(render.status_line(status), elem_id="status-line")
        turns = gr.State([])
        ref = gr.State(None)
        with gr.Tabs() as tabs:
            chat = chat_tab(library, tabs=tabs, turns=turns, ref=ref, workers=QUEUE_WORKERS)
            library_tab(library, status=status, status_top=status_top, chat=chat)
            watched_tab(library, panel=chat.panel, tabs=tabs)  # saved questions and the answers new articles gave them

        # With --mcp, Gradio turns public endpoints into MCP tools named after the function and returns str() of the
        # result, so the tools return JSON text; the dict-returning endpoints stay callable but leave the tool list.
        api_visibility = "undocumented" if mcp else "public"
        gr.api(ask, api_name="ask", api_visibility=api_visibility)
        gr.api(search, api_name="search", api_visibility=api_visibility)
        if mcp:
            ask_tool, search_tool = mcp_tools(library, default_k)
            gr.api(ask_tool, api_name="ask_json")
            gr.api(search_tool, api_name="search_json")
    return demo


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
