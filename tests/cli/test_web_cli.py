"""`rag add`, `rag sources ...` and `rag watch` end to end against a local server (fake embedder, real CLI code).

Includes the acceptance path: sources add + update on 127.0.0.1, ask with the page URL in the citation, a second
update adding only what changed, and the address checks refusing with a clear message; and an update or a watch
killed or stopped in the middle of publishing, after which the previous version keeps answering.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag import open_index
from rag.cli.commands import main as cli_main
from rag.cli.sources import parse_every
from rag.index.indexdir import PAUSE_ENV, current_version

from conftest import ROOT
from web_server import ARTICLES, article_html, rss

TESTS = Path(__file__).resolve().parents[1]
_FAKE_CLI = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from fakes import FakeEmbedder
import rag.index.build
import rag.index.version
rag.index.build.make_embedder = rag.index.version.make_embedder = lambda model, backend="torch", device="cpu": FakeEmbedder()
from rag.cli.commands import main
sys.exit(main(sys.argv[1:]))
"""
QUESTION = "When did the harbour authority reopen the northern pier?"


@pytest.fixture
def index(fake_cli_index):
    return fake_cli_index


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sources_add_update_ask_and_a_second_update(site, index, capsys):
    feed = site.url("/feed.xml")
    # Without the setting, 127.0.0.1 is refused with the reason and the fix.
    code, _, err = run(capsys, "sources", "add", feed, "--index", str(index))
    assert code == 9 and "error:" in err and "loopback address" in err and "allow_private_urls" in err
    assert site.requests == []

    code, out, _ = run(capsys, "sources", "add", feed, "--index", str(index), "--allow-private-urls")
    assert code == 0 and "following" in out and "rss, 3 entries" in out
    code, out, err = run(capsys, "sources", "update", "--index", str(index), "--allow-private-urls")
    assert code == 0 and "3 added, 0 changed" in out, err

    code, out, _ = run(capsys, "ask", QUESTION, "--index", str(index))
    assert code == 0
    citations = out.split("Citations", 1)[1]
    assert site.url("/news/business/harbour.html") in citations and "business" in citations
    assert "2024-03-05" in citations

    code, out, _ = run(capsys, "sources", "list", "--index", str(index))
    assert feed in out and "status ok" in out and "new items 3" in out

    code, out, _ = run(capsys, "sources", "update", "--index", str(index), "--allow-private-urls")
    assert "0 added, 0 changed" in out and "(0 added, 0 updated)" in out

    slug, title, date, section, body = ARTICLES[0]
    site.set(
        f"/news/{section}/{slug}.html", article_html(title, body + " A second pier opens next year.", date, section)
    )
    items = [(f"/news/{s}/{sl}.html", t, "2024-03-10T00:00:00Z" if sl == slug else d, s) for sl, t, d, s, _ in ARTICLES]
    site.set("/feed.xml", rss(site.url(""), items), "application/rss+xml")
    code, out, _ = run(capsys, "sources", "update", "--index", str(index), "--allow-private-urls")
    assert "0 added, 1 changed" in out and "(0 added, 1 updated)" in out

    code, out, _ = run(capsys, "sources", "remove", feed, "--index", str(index))
    assert code == 0 and "no longer following" in out
    code, out, _ = run(capsys, "sources", "list", "--index", str(index))
    assert "no sources followed" in out


def test_add_by_url_and_the_refusals(site, index, capsys):
    page = site.url("/news/weather/storm.html")
    code, out, _ = run(capsys, "add", page, "--index", str(index), "--allow-private-urls")
    assert code == 0 and "added" in out and "Storm closes the coastal road" in out
    assert page in {d.id for d in open_index(index).documents()}
    site.set("/go-metadata", b"", None, status=302, headers={"Location": "http://169.254.169.254/latest/"}, etag=False)
    site.set("/go-private", b"", None, status=302, headers={"Location": "http://10.1.2.3/"}, etag=False)
    code, _, err = run(capsys, "add", site.url("/go-metadata"), "--index", str(index), "--allow-private-urls")
    assert code == 9 and "169.254.169.254" in err and "never fetched" in err
    code, _, err = run(capsys, "add", site.url("/feed.xml"), "--index", str(index), "--allow-private-urls")
    assert code == 9 and "rag sources add" in err
    code, _, err = run(capsys, "add", "file:///etc/passwd", "--index", str(index))
    assert code == 9 and "scheme file:" in err
    code, out, _ = run(capsys, "add", page, site.url("/missing.html"), "--index", str(index), "--allow-private-urls")
    assert code == 9 and "unchanged" in out and "HTTP 404" in out


def test_rebuild_index_reads_the_kept_web_articles_without_network(site, index, capsys, tmp_path):
    run(capsys, "add", site.url("/news/culture/library.html"), "--index", str(index), "--allow-private-urls")
    site.stop()
    code, _, err = run(
        capsys, "rebuild-index", "--source", str(tmp_path / "articles"), "--index", str(index), "--full", "--quiet"
    )
    assert code == 0 and "including the web articles" in err
    assert site.url("/news/culture/library.html") in {d.id for d in open_index(index).documents()}


def test_parse_every():
    assert [parse_every(x) for x in ("30s", "30m", "2h", "1d", "45")] == [30, 1800, 7200, 86400, 45]
    for bad in ("soon", "0s", "-5m", ""):
        with pytest.raises(Exception, match="--every"):
            parse_every(bad)


class _Proc:
    """A CLI subprocess (fake embedder) whose stderr lines are collected as they come."""

    def __init__(self, args: list[str], pause: str | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env["RAG_FETCH_DELAY_S"] = "0"
        if pause:
            env[PAUSE_ENV] = pause
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FAKE_CLI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        ended = 0
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"never saw {text!r}: {self.seen}") from None
            if line is None:
                ended += 1
                if ended == 2:
                    raise AssertionError(f"exited ({self.proc.wait()}) before {text!r}: {self.seen}")
                continue
            self.seen.append(line)
            if text in line:
                return


def _answers(index: Path, fake_embedder, version: str) -> None:
    idx = open_index(index, embedder=fake_embedder)
    try:
        assert idx.version == version
        assert idx.query(QUESTION).passages  # answers (the seed-only index abstains, with passages)
    finally:
        idx.close()


def test_an_update_killed_in_the_middle_leaves_the_previous_version_answering(site, index, capsys, fake_embedder):
    run(capsys, "add", site.url("/news/business/harbour.html"), "--index", str(index), "--allow-private-urls")
    run(capsys, "sources", "add", site.url("/atom.xml"), "--index", str(index), "--allow-private-urls")
    before = current_version(index).name
    for stage in ("embed", "write", "swap"):
        proc = _Proc(["sources", "update", "--index", str(index), "--allow-private-urls"], pause=stage)
        proc.wait_for(f"paused at {stage}")
        proc.proc.send_signal(signal.SIGKILL)
        assert proc.proc.wait(timeout=30) == -signal.SIGKILL
        assert current_version(index).name == before
        _answers(index, fake_embedder, before)
        code, out, _ = run(capsys, "check-index", "--index", str(index))
        assert code == 0, out
    # The next update takes over: the killed one left its lock and debris, both are cleaned up.
    code, out, err = run(capsys, "sources", "update", "--index", str(index), "--allow-private-urls")
    assert code == 0 and "2 added" in out, err
    assert current_version(index).name != before


def test_watch_stops_cleanly_on_sigterm_between_and_during_updates(site, index, capsys, fake_embedder):
    run(capsys, "sources", "add", site.url("/feed.xml"), "--index", str(index), "--allow-private-urls")
    before = current_version(index).name
    # During an update (held while embedding): SIGTERM stops it, nothing is published.
    proc = _Proc(["watch", "--every", "1s", "--index", str(index), "--allow-private-urls"], pause="embed")
    proc.wait_for("paused at embed")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=60) == 0
    proc.wait_for("watch stopped")
    assert current_version(index).name == before
    assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")]  # the work folder was removed
    _answers(index, fake_embedder, before)
    # Between updates: the first round publishes, SIGTERM during the wait stops it.
    proc = _Proc(["watch", "--every", "1h", "--index", str(index), "--allow-private-urls"])
    proc.wait_for("built in")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=60) == 0
    assert current_version(index).name != before
