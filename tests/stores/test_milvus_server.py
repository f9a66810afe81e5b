"""The Milvus store against a real server: the server failing at every moment that matters, and logins.

Every test here uses the session's server (tests/conftest.py, authorization on) and leaves it running; the fault
tests stop, kill and restart it on the same ports and data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from rag import build_index, open_index
from rag.config import Settings
from rag.errors import StoreUnavailableError
from rag.index.indexdir import current_version, read_manifest
from rag.stores.milvus import PASSWORD_ENV, TOKEN_ENV, USER_ENV, MilvusStore

from conftest import MILVUS_ADMIN_TOKEN, ROOT, SEED_QUESTION, SEEDS, WALTZ, eventually
from fakes import FakeEmbedder

pytestmark = pytest.mark.milvus_server

# A short limit per call, so that a question or a build against a stopped server fails in seconds.
TIMEOUT_S = 5.0


def _settings(uri: str) -> Settings:
    return Settings(store="milvus", milvus_uri=uri, milvus_timeout_s=TIMEOUT_S)


def _articles(tmp_path: Path, name: str = "src") -> Path:
    src = tmp_path / name
    shutil.copytree(SEEDS, src)
    (src / "cats.txt").write_text("Cats sleep most of the day. Cats purr when they are content and fed.")
    return src


def _store_params(index_dir: Path) -> dict:
    return read_manifest(current_version(index_dir))["store"]


def _rag(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`rag ARGS` in a new process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _answered(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`rag ARGS`, which must succeed."""
    run = _rag(*args, env=env)
    if run.returncode != 0:
        raise AssertionError(run.stderr[-3000:])
    return run


def _admin(uri: str):
    from pymilvus import MilvusClient

    return MilvusClient(uri, token=MILVUS_ADMIN_TOKEN, timeout=TIMEOUT_S)


# -- faults ---------------------------------------------------------------------------------------------------------


@pytest.mark.model
def test_ask_and_serve_refuse_in_one_line_while_the_server_is_down(
    tmp_path, milvus_server, milvus_login, model_embedder
):
    index_dir = tmp_path / "index"
    build_index(SEEDS, index_dir, _settings(milvus_login), embedder=model_embedder)
    milvus_server.stop()
    try:
        env = {"RAG_MILVUS_TIMEOUT_S": str(TIMEOUT_S)}
        ask = _rag("ask", SEED_QUESTION, "--index", str(index_dir), env=env)
        port = str(milvus_server.port)
        serve = _rag("serve", "--index", str(index_dir), "--port", "0", env=env)
    finally:
        milvus_server.start()
    for run in (ask, serve):
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert run.returncode == StoreUnavailableError.exit_code == 8, run.stderr[-3000:]
        assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, run.stderr[-3000:]
        assert f"http://127.0.0.1:{port}" in errors[0] and "start the Milvus server" in errors[0]
    # Back up: a new process answers from the same index, no rebuild needed.
    back = eventually(lambda: _answered("ask", SEED_QUESTION, "--index", str(index_dir), "--json"))
    assert WALTZ in json.loads(back.stdout)["citations"][0]["quote"]


def test_server_killed_during_a_build_keeps_the_published_version(tmp_path, milvus_server, milvus_login, monkeypatch):
    settings, emb = _settings(milvus_login), FakeEmbedder()
    src, index_dir = _articles(tmp_path), tmp_path / "index"
    build_index(src, index_dir, settings, embedder=emb)
    version, params = current_version(index_dir), _store_params(index_dir)
    idx = open_index(index_dir, settings=settings, embedder=emb)
    want = [(p.doc_id, p.start, p.end) for p in idx.search(SEED_QUESTION, k=5)]
    idx.close()

    (src / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
    original_add = MilvusStore.add
    killed = []

    def add_then_die(self, ids, vectors, metadata=None):
        # Half the rows reach the server, then it dies under the build.
        half = max(1, len(ids) // 2)
        original_add(self, ids[:half], vectors[:half], None if metadata is None else metadata[:half])
        milvus_server.kill()
        killed.append(True)
        original_add(self, ids[half:], vectors[half:], None if metadata is None else metadata[half:])

    monkeypatch.setattr(MilvusStore, "add", add_then_die)
    try:
        with pytest.raises(StoreUnavailableError) as failed:
            build_index(src, index_dir, settings, embedder=emb, full=True)
    finally:
        monkeypatch.setattr(MilvusStore, "add", original_add)
        milvus_server.start()
    assert killed and milvus_login in str(failed.value) and "\n" not in str(failed.value)

    # Nothing of the failed build was published, and no work folder is left behind.
    assert current_version(index_dir) == version and _store_params(index_dir) == params
    assert not [p.name for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    idx = eventually(lambda: open_index(index_dir, settings=settings, embedder=emb))
    try:
        assert [(p.doc_id, p.start, p.end) for p in eventually(lambda: idx.search(SEED_QUESTION, k=5))] == want
        assert len(idx.store) == params["count"]
        assert all("Owls" not in p.text for p in idx.search("owls hunt at night", k=5))
    finally:
        idx.close()

    # The next build succeeds and clears the half-written collection away.
    build_index(src, index_dir, settings, embedder=emb)
    names = set(_admin(milvus_login).list_collections())
    family = params["family"]
    live = _store_params(index_dir)["collection"]
    assert {n for n in names if n.startswith(family + "_")} == {params["collection"], live}


def test_the_web_app_rides_out_a_server_restart(tmp_path, milvus_server, milvus_login):
    from gradio_client import Client

    from rag.library.library import Library

    from ui_support import running_app

    settings, emb = _settings(milvus_login), FakeEmbedder()
    index_dir = tmp_path / "index"
    build_index(_articles(tmp_path), index_dir, settings, embedder=emb)
    library = Library(index_dir, settings.with_(index_dir=str(index_dir)), embedder=emb)
    with running_app(library) as url:
        client = Client(url, verbose=False)
        before = client.predict("cats purr", 3, api_name="/search")
        assert before and "Cats purr" in before[0]["text"]
        milvus_server.kill()
        try:
            with pytest.raises(Exception) as down:
                client.predict("cats purr", 3, api_name="/search")
            message = str(down.value)
            assert milvus_login in message and "running" in message and "Traceback" not in message
        finally:
            milvus_server.start()
        # The same app, not restarted, answers again once the server is back.
        assert eventually(lambda: client.predict("cats purr", 3, api_name="/search")) == before
        answer = client.predict(SEED_QUESTION, 5, api_name="/ask")
        assert answer["passages"]


def test_two_index_folders_sharing_collections_are_kept_apart(tmp_path, milvus_login):
    """A copied index folder builds against the same server as the original, at the same time: neither build
    writes to, publishes over or drops the other's collections."""
    settings, emb = _settings(milvus_login), FakeEmbedder()
    src_a, a = _articles(tmp_path, "src-a"), tmp_path / "a"
    build_index(src_a, a, settings, embedder=emb)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    src_b = tmp_path / "src-b"
    shutil.copytree(src_a, src_b)
    (src_a / "owls.txt").write_text("Owls hunt at night and sleep through the day in hollow trees.")
    (src_b / "bees.txt").write_text("Bees carry pollen between flowers and make honey in their hives.")

    for _ in range(2):  # the second round is where a shared family would drop the other folder's live collection
        errors: list[BaseException] = []

        def build(src: Path, index_dir: Path, errors: list = errors) -> None:
            try:
                build_index(src, index_dir, settings, embedder=emb)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=build, args=pair) for pair in ((src_a, a), (src_b, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not errors, errors
        (src_a / "owls.txt").write_text("Owls hunt at night. Their feathers make no sound in flight.")
        (src_b / "bees.txt").write_text("Bees carry pollen. A hive keeps one queen through the winter.")

    pa, pb = _store_params(a), _store_params(b)
    assert pa["collection"] != pb["collection"] and pa["family"] != pb["family"] and pa["owner"] != pb["owner"]
    names = set(_admin(milvus_login).list_collections())
    assert {pa["collection"], pb["collection"]} <= names
    for index_dir, own, other in ((a, "Owls", "Bees"), (b, "Bees", "Owls")):
        idx = open_index(index_dir, settings=settings, embedder=emb)
        try:
            texts = [p.text for p in idx.search(f"{own.lower()} {other.lower()}", k=10)]
            assert any(own in t for t in texts) and not any(other in t for t in texts)
            assert len(idx.store) == _store_params(index_dir)["count"]
        finally:
            idx.close()


def test_open_loads_a_released_collection_and_leaves_a_loaded_one(tmp_path, milvus_login, monkeypatch):
    """The load state is asked once, at open: a collection released on the server (as after a restart) is loaded
    then, and a loaded one is not asked to load again."""
    from pymilvus.client.types import LoadState

    from rag.stores.milvus_connection import CONNECTIONS, target_from_params

    settings, emb = _settings(milvus_login), FakeEmbedder()
    index_dir = tmp_path / "index"
    build_index(_articles(tmp_path), index_dir, settings, embedder=emb)
    params = _store_params(index_dir)
    target = target_from_params(params, index_dir)
    client = CONNECTIONS.acquire(target, TIMEOUT_S)  # the client the index will share, to watch its calls
    try:
        loads: list[str] = []
        real_load = client.load_collection

        def load(name, *args, **kwargs):
            loads.append(name)
            return real_load(name, *args, **kwargs)

        monkeypatch.setattr(client, "load_collection", load)
        for released in (True, False):
            if released:
                client.release_collection(params["collection"])
                assert client.get_load_state(params["collection"])["state"] == LoadState.NotLoad
            loads.clear()
            idx = open_index(index_dir, settings=settings, embedder=emb)
            try:
                assert loads == ([params["collection"]] if released else [])
                assert "Cats purr" in idx.search("cats purr", k=1)[0].text
                assert loads == ([params["collection"]] if released else [])
            finally:
                idx.close()
    finally:
        CONNECTIONS.release(target)


# -- logins ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def reader(milvus_login):
    """A user with a unique password, allowed to create and search collections; removed afterwards."""
    user, password = f"rag_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    admin = _admin(milvus_login)
    admin.create_user(user, password)
    admin.grant_role(user, "admin")
    yield user, password
    admin.drop_user(user)


@pytest.mark.model
def test_user_password_and_token_work_and_never_show(tmp_path, milvus_login, reader, model_embedder):
    user, password = reader
    login = {USER_ENV: user, PASSWORD_ENV: password}
    index_dir = tmp_path / "index"
    built = _rag(
        "rebuild-index",
        "--source",
        str(SEEDS),
        "--index",
        str(index_dir),
        "--store",
        "milvus",
        "--milvus-uri",
        milvus_login,
        "--quiet",
        env={**login, TOKEN_ENV: "", "RAG_MILVUS_TIMEOUT_S": str(TIMEOUT_S)},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    token = {TOKEN_ENV: f"{user}:{password}"}
    ask = _rag("ask", SEED_QUESTION, "--index", str(index_dir), "--json", env=token)
    assert ask.returncode == 0, ask.stderr[-3000:]
    assert WALTZ in json.loads(ask.stdout)["citations"][0]["quote"]
    info = _rag("info", "--index", str(index_dir), "--json", env=login)
    assert info.returncode == 0 and json.loads(info.stdout)["store"]["uri"] == milvus_login

    wrong = _rag(
        "ask",
        SEED_QUESTION,
        "--index",
        str(index_dir),
        env={USER_ENV: user, PASSWORD_ENV: "not-" + password, TOKEN_ENV: ""},
    )
    assert wrong.returncode == 8 and "Traceback" not in wrong.stderr, wrong.stderr[-3000:]
    assert [line for line in wrong.stderr.splitlines() if line.startswith("error:")] == [
        f"error: Milvus at {milvus_login} refused the user and password in {USER_ENV} / {PASSWORD_ENV}: set the right ones"
    ]
    nothing = _rag("info", "--index", str(index_dir), env={TOKEN_ENV: ""})
    assert nothing.returncode == 8 and "may require a login" in nothing.stderr and "Traceback" not in nothing.stderr

    # The secrets appear nowhere: not in any output, not in any file of the index folder.
    said = "".join(r.stdout + r.stderr for r in (built, ask, info, wrong, nothing))
    files = b"".join(p.read_bytes() for p in index_dir.rglob("*") if p.is_file())
    for secret in (password, "not-" + password):
        assert secret not in said and secret.encode() not in files


def test_wrong_token_and_messages_keep_secrets_out(tmp_path, milvus_login, monkeypatch, caplog):
    """In-process: errors and everything logged while failing name the URI and the setting, never the secret."""
    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv(TOKEN_ENV, f"root:{secret}")
    caplog.set_level("DEBUG")
    with pytest.raises(StoreUnavailableError) as err:
        build_index(SEEDS, tmp_path / "index", _settings(milvus_login), embedder=FakeEmbedder())
    assert str(err.value) == (
        f"Milvus at {milvus_login} refused the connection with the token in {TOKEN_ENV}: "
        "set a valid token (user:password or an API key)"
    )
    assert secret not in caplog.text and secret not in str(err.value)
