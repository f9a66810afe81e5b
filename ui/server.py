"""One server for the web app and the JSON API: a FastAPI app with the API at /api and the Gradio app at /.

The API is mounted beside Gradio, not inside it, so that Gradio's own middleware (its CORS policy among them)
does not touch /api: the API's CORS is the API's own, off unless origins are named.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI
from gradio import networking
from starlette.routing import BaseRoute, Mount

from rag.errors import ConfigError

__all__ = ["Served", "start"]


class Served:
    """A running server: `url` is its address (with a trailing /); `close()` stops it, `wait()` blocks until then."""

    def __init__(
        self,
        url: str,
        server: uvicorn.Server,
        thread: threading.Thread,
        loop: asyncio.AbstractEventLoop,
        demo: gr.Blocks,
        gradio_app: Any,
        share_url: str | None = None,
    ):
        self.url = url
        self.share_url = share_url
        self.demo = demo
        self._server = server
        self._thread = thread
        self._loop = loop
        self._gradio_app = gradio_app

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        # The browsers' heartbeat streams end on Gradio's stop event; until they do, a graceful shutdown would wait.
        stop = getattr(self._gradio_app, "stop_event", None)
        if stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(stop.set)
        self.demo.close(verbose=False)
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def wait(self) -> None:
        """Block until Ctrl-C or SIGTERM (then stop the server) or until the server stops by itself."""

        def interrupt(signum, frame):  # SIGTERM (a service manager, `kill`): stop as Ctrl-C does
            raise KeyboardInterrupt

        previous = (
            signal.signal(signal.SIGTERM, interrupt) if threading.current_thread() is threading.main_thread() else None
        )
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            print("\nstopping", file=sys.stderr)
        finally:
            self.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _check_port(host: str, port: int) -> None:
    """Refuse at once, with the fix, when the address cannot be bound (uvicorn would log and exit its thread)."""
    try:
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host.strip("[]"), port))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({exc.strerror or exc}); pass --port with a free port, or "
            "stop whatever holds this one"
        ) from None


def start(
    demo: gr.Blocks,
    api: FastAPI,
    *,
    host: str,
    port: int,
    gradio_options: dict[str, Any],
    share: bool = False,
    quiet: bool = False,
    routes: Sequence[BaseRoute] = (),
) -> Served:
    """Serve `api` at /api and `demo` at / on host:port, in a background thread.

    Args:
        gradio_options: keyword arguments of gr.mount_gradio_app (login, css, blocked paths, upload size, MCP).
        share: also ask Gradio's share service for a public link.
        routes: more routes at the root (the Atom feed of ui.atom), each with its own login check.

    Raises:
        ConfigError: the address cannot be bound.
    """
    _check_port(host, port)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/api", api)  # before Gradio's mount at /, which would otherwise take every path
    app.router.routes.extend(routes)
    gr.mount_gradio_app(app, demo, path="/", server_name=host, server_port=port, **gradio_options)
    mounted = app.routes[-1]  # the Mount that mount_gradio_app just added
    assert isinstance(mounted, Mount), mounted
    gradio_app = mounted.app
    config = uvicorn.Config(
        app, host=host.strip("[]"), port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="rag-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server did not start on {host}:{port}; see the messages above")
        time.sleep(0.01)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/"
    share_url = None
    if share:
        try:
            share_url = networking.setup_tunnel(
                local_host=host,
                local_port=port,
                share_token=secrets.token_urlsafe(32),
                share_server_address=None,
                share_server_tls_certificate=None,
            )
        except Exception as exc:  # noqa: BLE001 - the share service is optional; the local server runs on
            print(f"warning: no public link could be made ({type(exc).__name__}: {exc})", file=sys.stderr)
    if not quiet:
        print(f"* Running on {url} (JSON API: {url}api/, documented at {url}api/docs)")
        if share_url:
            print(f"* Public link: {share_url}")
    return Served(url, server, thread, loop, demo, gradio_app, share_url)
