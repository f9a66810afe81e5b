"""Shared pieces of the web app tests: start the app in this process on a free port, launch Chromium, open a page."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(library, *, mcp: bool = False, auth=None, host: str = "127.0.0.1", cors_origins=()) -> Iterator[str]:
    """Serve create_app(library) and the JSON API on a free port until the block ends; yields the base URL (with a
    trailing /)."""
    from ui.app import create_app, launch

    demo = create_app(library, mcp=mcp)
    port = free_port()
    served = launch(demo, library, host=host, port=port, mcp=mcp, auth=auth, cors_origins=cors_origins, block=False)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield url
    finally:
        served.close()


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under playwright, closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def app_page(browser, url: str, *, timeout_ms: int = 30_000, **context) -> Iterator:
    """A page of its own (its own chat session) on the app, once the message box is there.

    `context`: browser context options (default a 1280 x 800 window)."""
    ctx = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context})
    try:
        page = ctx.new_page()
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        page.wait_for_selector("#msg textarea")
        yield page
    finally:
        ctx.close()


def no_proxy() -> None:
    """Requests to 127.0.0.1 must not go through a proxy from the environment."""
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
