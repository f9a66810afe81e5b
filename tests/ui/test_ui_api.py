"""The JSON API at /api/ through a real server on 127.0.0.1: the CLI's answers and errors, the listing, articles,
health, the OpenAPI document and its page, the login on every route, CORS, the body limit, and 50 parallel asks."""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from conftest import SEED_QUESTION, SEEDS, WALTZ
from fakes import FakeEmbedder
from ui_support import no_proxy, running_app

pytestmark = pytest.mark.slow

httpx = pytest.importorskip("httpx")

FERRY = (
    "---\ntitle: Harbour ferry returns\ndate: 2024-05-02\nsection: transport\noutlet: Port Elsa Gazette\n---\n"
    "The harbour ferry returns on Monday after a month of repairs. The first crossing leaves at nine.\n"
)
WIRE = [
    {
        "title": "Budget vote delayed",
        "text": "The budget vote was delayed until March because the committee had "
        "not finished its report. Ministers said the delay was short.",
        "date": "2024-02-10",
        "section": "politics",
        "outlet": "Wire",
    },
    {
        "title": "Council elects a mayor",
        "text": "The council elected a new mayor on Tuesday by eleven votes to four. She takes office in June.",
        "date": "2024-03-20",
        "section": "politics",
        "outlet": "Wire",
    },
]
FOLLOW = "Who said it could be lifted?"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from rag import build_index
    from rag.config import Settings
    from rag.library.library import Library

    no_proxy()
    root = tmp_path_factory.mktemp("api")
    src = root / "articles"
    shutil.copytree(SEEDS, src)
    (src / "world").mkdir()
    (src / "world" / "ferry.md").write_text(FERRY, encoding="utf-8")
    (src / "wire.jsonl").write_text("".join(json.dumps(r) + "\n" for r in WIRE), encoding="utf-8")
    settings = Settings.load(
        {"source": str(src), "index_dir": str(root / "index"), "uploads_dir": str(root / "data" / "uploads")}
    )
    emb = FakeEmbedder()
    build_index(src, settings.index_dir, settings, embedder=emb)
    return Library(settings.index_dir, settings, embedder=emb)


@pytest.fixture(scope="module")
def api(library):
    with running_app(library) as url, httpx.Client(base_url=url + "api/", timeout=60) as client:
        yield client


def same(obj) -> object:
    """`obj` as it comes back from JSON."""
    return json.loads(json.dumps(obj))


def cli_json(monkeypatch, capsys, library, *argv: str):
    """`rag <argv> --json` on the library's index, with the tests' embedder: (exit code, parsed stdout, stderr)."""
    import rag.index.build
    import rag.index.version
    from rag.cli import commands as cli

    for module in (rag.index.build, rag.index.version):
        monkeypatch.setattr(module, "make_embedder", lambda *a, **k: library.index.embedder)
    capsys.readouterr()
    code = cli.main([*argv, "--index", str(library.index_dir), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err.strip()


# -- answers --------------------------------------------------------------------------------------------------------


def test_ask_answers_as_the_cli_prints_it(api, library, monkeypatch, capsys):
    r = api.post("ask", json={"question": SEED_QUESTION, "k": 3})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    got = r.json()
    code, printed, _ = cli_json(monkeypatch, capsys, library, "ask", SEED_QUESTION, "--k", "3")
    assert code == 0 and got == printed == same(library.ask(SEED_QUESTION, 3).to_dict())
    assert WALTZ in got["text"] and 1 <= len(got["passages"]) <= 3
    for c in got["citations"]:
        assert library.document(c["doc_id"]).text[c["start"] : c["end"]] == c["quote"]


def test_ask_takes_the_history_and_every_filter(api, library):
    first = api.post("ask", json={"question": SEED_QUESTION, "k": 3}).json()
    history = [{"question": SEED_QUESTION, "answer": first}]
    got = api.post("ask", json={"question": FOLLOW, "k": 3, "history": history}).json()
    assert got == same(library.ask(FOLLOW, 3, history=history).to_dict())
    assert got["follows"] == 1 and got["read_as"] and got["read_as"] != FOLLOW
    # A plain question string is a turn too.
    assert api.post("ask", json={"question": FOLLOW, "history": [SEED_QUESTION]}).status_code == 200

    politics = api.post(
        "ask",
        json={
            "question": "When is the budget vote?",
            "section": ["Politics"],
            "outlet": ["wire"],
            "since": "2024-02",
            "until": "2024-12-31",
            "sort": "newest",
        },
    ).json()
    assert politics["passages"] and {p["section"] for p in politics["passages"]} == {"politics"}
    dates = [p["date"] for p in politics["passages"]]
    assert dates == sorted(dates, reverse=True)
    only = api.post("ask", json={"question": "ferry", "doc_ids": ["world/ferry.md"]}).json()
    assert {p["doc_id"] for p in only["passages"]} == {"world/ferry.md"}
    by_source = api.post("ask", json={"question": "mayor", "sources": ["wire.jsonl#2"]}).json()
    assert {p["source"] for p in by_source["passages"]} == {"wire.jsonl#2"}
    never = api.post("ask", json={"question": SEED_QUESTION, "abstain_threshold": 1.0}).json()
    assert never["abstained"] and never["citations"] == [] and never["passages"]


def test_search_lists_the_passages_as_the_cli_prints_them(api, library, monkeypatch, capsys):
    got = api.post("search", json={"question": "intelligence sharing", "k": 2}).json()
    code, printed, _ = cli_json(monkeypatch, capsys, library, "search", "intelligence sharing", "--k", "2")
    assert code == 0 and got == printed == same([p.to_dict() for p in library.search("intelligence sharing", 2)])
    newest = api.post("search", json={"question": "vote", "section": ["politics"], "sort": "newest"}).json()
    assert [p["doc_id"] for p in newest] == ["wire.jsonl#2", "wire.jsonl#1"]


# -- the library ----------------------------------------------------------------------------------------------------


def test_articles_lists_searches_filters_sorts_and_pages(api, library):
    everything = api.get("articles").json()
    assert everything["total"] == len(library.documents()) == 4
    assert [r["id"] for r in everything["rows"]] == [d.id for d in library.listing().rows]
    politics = api.get("articles", params={"section": "politics", "sort": "date", "descending": "true"}).json()
    assert [r["id"] for r in politics["rows"]] == ["wire.jsonl#2", "wire.jsonl#1"]
    assert politics["by_section"] == {"politics": 2} and politics["by_month"] == {"2024-03": 1, "2024-02": 1}
    assert politics["rows"][0] | {"passages": 0} == {
        "id": "wire.jsonl#2",
        "title": "Council elects a mayor",
        "source": "wire.jsonl#2",
        "date": "2024-03-20",
        "section": "politics",
        "outlet": "Wire",
        "author": None,
        "url": None,
        "tags": [],
        "passages": 0,
    }
    paged = api.get("articles", params={"per_page": 1, "page": 2}).json()
    assert (paged["page"], paged["pages"], len(paged["rows"])) == (2, 4, 1)
    assert api.get("articles", params={"q": "harbour ferry"}).json()["rows"][0]["id"] == "world/ferry.md"
    bad = api.get("articles", params={"sort": "colour"})
    assert bad.status_code == 400 and "cannot sort the articles by 'colour'" in bad.json()["error"]


def test_an_article_by_id_with_its_text(api, library):
    for doc_id in ("world/ferry.md", "wire.jsonl#1", library.documents()[0].id):
        r = api.get("articles/" + quote(doc_id, safe="/"))
        assert r.status_code == 200, doc_id
        doc = library.document(doc_id)
        assert r.json()["text"] == doc.text and r.json()["id"] == doc_id and r.json()["title"] == doc.title
    ferry = api.get("articles/world/ferry.md").json()
    assert (ferry["date"], ferry["section"], ferry["outlet"]) == ("2024-05-02", "transport", "Port Elsa Gazette")
    missing = api.get("articles/world/nothing.md")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "no article 'world/nothing.md' in the index; GET /api/articles lists the ids",
        "exit_code": 1,
    }


def test_health_and_503_while_no_index_can_be_opened(api, library):
    got = api.get("health").json()
    info = library.index.info()
    assert got == {
        "status": "ok",
        "index_version": info["version"],
        "documents": 4,
        "chunks": info["chunks"],
        "sentences": info["sentences"],
        "model": "fake-hash-embedder",
        "reader": "default",
        "built_at": info["built_at"],
        "building": False,
    }
    pointer = library.index_dir / "CURRENT"
    aside = pointer.with_name("CURRENT.aside")
    pointer.rename(aside)  # as if the index folder had been emptied
    try:
        for r in (api.get("health"), api.post("ask", json={"question": SEED_QUESTION})):
            assert r.status_code == 503
            assert r.json()["exit_code"] == 4 and "rag rebuild-index" in r.json()["error"]
    finally:
        aside.rename(pointer)
    assert api.get("health").status_code == 200


# -- errors: each its own message, the CLI's where the CLI can say it ------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"question": "x" * 2001}, "the question is 2,001 characters long; the limit is 2,000 (max_question_chars)"),
        ({"question": "   "}, "the question is empty"),
        ({"question": SEED_QUESTION, "k": 0}, "k must be between 1 and 100, got 0"),
        ({"question": SEED_QUESTION, "k": 101}, "k must be between 1 and 100, got 101"),
        ({"question": SEED_QUESTION, "k": "5"}, "k must be a whole number, got the text '5'"),
        ({"question": SEED_QUESTION, "k": 2.5}, "k must be a whole number, got the number 2.5"),
        ({"question": 42}, "question must be text, got the number 42"),
        ({"k": 3}, "question is required"),
        ({"question": SEED_QUESTION, "section": "politics"}, "section must be a list, got the text 'politics'"),
        ({"question": SEED_QUESTION, "doc_ids": ["a", 7]}, "doc_ids item 2 must be text, got the number 7"),
        ({"question": SEED_QUESTION, "section": ["sport"]}, "unknown section"),
        ({"question": SEED_QUESTION, "since": "last week"}, "YYYY-MM-DD"),
        ({"question": SEED_QUESTION, "since": "2024-06", "until": "2024-01"}, "after"),
        ({"question": SEED_QUESTION, "sort": "oldest"}, "sort must be 'relevance' or 'newest', got the text 'oldest'"),
        ({"question": SEED_QUESTION, "quesiton": "typo"}, "unknown field 'quesiton'; the fields are: question, k,"),
        ({"question": SEED_QUESTION, "abstain_threshold": 2}, "abstain_threshold must be in [0, 1], got 2"),
        ({"question": SEED_QUESTION, "history": "what would lift the pause?"}, "history must be a list, got the text"),
        ({"question": FOLLOW, "history": [42]}, "history turn 1 must be a question or an object"),
        (
            {"question": FOLLOW, "history": [{"question": "a", "answer": "b"}]},
            "history turn 1: answer must be an object",
        ),
        ([SEED_QUESTION], "the body must be a JSON object, got a list"),
    ],
)
def test_each_bad_request_gets_its_own_message(api, body, message):
    r = api.post("ask", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["exit_code"] == 2 and message in r.json()["error"], r.json()
    assert "\n" not in r.json()["error"] and "Traceback" not in r.text


@pytest.mark.parametrize(
    "argv, body",
    [
        (["--k", "0"], {"k": 0}),
        (["--section", "sport"], {"section": ["sport"]}),
        (["--since", "last week"], {"since": "last week"}),
        (["--threshold", "2"], {"abstain_threshold": 2}),
    ],
)
def test_errors_are_the_cli_messages(api, library, monkeypatch, capsys, argv, body):
    code, _, err = cli_json(monkeypatch, capsys, library, "ask", SEED_QUESTION, *argv)
    r = api.post("ask", json={"question": SEED_QUESTION, **body})
    assert code == 2 and r.status_code == 400
    assert err.removeprefix("error: ").replace("2.0", "2") == r.json()["error"].replace("2.0", "2")
    assert r.json()["exit_code"] == code


def test_bodies_that_are_not_json_objects(api):
    r = api.post("ask", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON (Expecting value at character")
    # curl -d without -H sends a form content type: the message says what to add.
    r = api.post(
        "ask",
        content=json.dumps({"question": SEED_QUESTION}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and "-H 'Content-Type: application/json'" in r.json()["error"]
    r = api.post("ask", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("the body is empty")
    r = api.get("nowhere")
    assert r.status_code == 404 and "no such endpoint: GET /api/nowhere" in r.json()["error"]
    r = api.get("ask")
    assert r.status_code == 405 and r.json()["error"] == "/api/ask does not take GET; see /api/docs"


def test_bodies_over_one_megabyte_are_refused_and_long_histories_trimmed(api):
    turn = {"question": "what would lift the pause? " * 40}
    big = json.dumps({"question": FOLLOW, "history": [turn] * 1200}).encode()  # about 1.3 MB
    assert len(big) > 1024 * 1024
    r = api.post("ask", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json() == {
        "error": "the request body is over the 1 MB limit; send a shorter question or history (only the last 20 "
        "turns are read)",
        "exit_code": 2,
    }

    def chunks():  # no Content-Length: the limit is found while the bytes arrive
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = api.post("ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "1 MB limit" in r.json()["error"]
    # Under the limit, a history longer than 20 turns is trimmed, as `rag ask --history` trims it.
    r = api.post("ask", json={"question": FOLLOW, "history": [SEED_QUESTION] * 500})
    assert r.status_code == 200 and r.json()["follows"] in (None, 500)


# -- the contract ---------------------------------------------------------------------------------------------------


def test_openapi_document_and_page(api, library):
    from ui.api_models import AnswerOut, CitationOut, PassageOut

    doc = api.get("openapi.json").json()
    assert set(doc["paths"]) == {
        "/ask",
        "/search",
        "/articles",
        "/articles/{doc_id}",
        "/health",
        "/questions",
        "/questions/{question_id}",
        "/answers",
    }
    assert doc["servers"] == [{"url": "/api"}]
    # The answers listed are those the API gives: a body it cannot read is a 400 with an ErrorOut, never a 422.
    responses = {
        (path, method): set(op["responses"]) for path, ops in doc["paths"].items() for method, op in ops.items()
    }
    assert all("422" not in codes for codes in responses.values())
    assert responses[("/ask", "post")] == {"200", "400", "401", "413", "503"}
    assert responses[("/articles/{doc_id}", "get")] == {"200", "400", "401", "404", "503"}
    schemas = doc["components"]["schemas"]
    for name in ("AskRequest", "SearchRequest"):
        assert schemas[name]["examples"], name
    assert set(schemas["AskRequest"]["properties"]) == {
        "question",
        "k",
        "since",
        "until",
        "section",
        "outlet",
        "doc_ids",
        "sources",
        "sort",
        "history",
        "abstain_threshold",
    }
    # The answer models are the dicts the library makes, field for field, and the answers validate against them.
    answer = library.ask(SEED_QUESTION, 3)
    assert list(AnswerOut.model_fields) == list(answer.to_dict())
    assert list(CitationOut.model_fields) == list(answer.citations[0].to_dict())
    assert list(PassageOut.model_fields) == list(answer.passages[0].to_dict())
    AnswerOut.model_validate(api.post("ask", json={"question": SEED_QUESTION}).json())
    page = api.get("docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/api/ask", "/api/search", "/api/articles", "/api/articles/{doc_id}", "/api/health"):
        assert path in page.text
    assert "curl -H &#x27;Content-Type: application/json&#x27; -d &#x27;{&quot;question&quot;" in page.text
    assert "cdn" not in page.text.lower()  # works offline: nothing fetched from elsewhere


# -- access ---------------------------------------------------------------------------------------------------------


def _every_route(library) -> list[tuple[str, str]]:
    """(method, path) of every route the API app has, path parameters filled in."""
    from ui.api import create_api

    def walk(routes):
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI keeps an included router as one entry
            yield from walk(included.routes) if included is not None else [route]

    out = []
    for route in walk(create_api(library).routes):
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            out.append(
                (
                    method,
                    route.path.replace("{doc_id:path}", "world/ferry.md").replace("{question_id}", "1").lstrip("/"),
                )
            )
    return out


def test_login_on_every_route(library, capfd):
    from ui.access import resolve_auth

    secret = "pw-Api-7731-never-printed"
    creds = resolve_auth(None, {"RAG_AUTH": f"desk:{secret}"})
    routes = _every_route(library)
    assert {p for _, p in routes} >= {
        "ask",
        "search",
        "articles",
        "articles/world/ferry.md",
        "health",
        "docs",
        "openapi.json",
    }
    with running_app(library, auth=creds) as url, httpx.Client(base_url=url + "api/", timeout=60) as http:
        for method, path in routes + [("GET", "no-such-route"), ("DELETE", "ask")]:
            body = {"question": SEED_QUESTION} if method == "POST" else None
            for auth in (None, ("desk", "wrong"), ("someone", secret)):
                r = http.request(method, path, json=body, auth=auth)
                assert r.status_code == 401, (method, path, auth, r.status_code)
                assert r.headers["www-authenticate"].startswith('Basic realm="rag-articles"')
                assert r.json()["exit_code"] == 1 and "Traceback" not in r.text
            if method != "HEAD" and path != "no-such-route" and (method, path) != ("DELETE", "ask"):
                ok = http.request(method, path, json=body, auth=("desk", secret))
                # POST questions saves question 1 (201), which DELETE questions/1 then removes.
                assert ok.status_code == (201 if path == "questions" and method == "POST" else 200), (
                    method,
                    path,
                    ok.text,
                )
        r = http.get("health", headers={"Authorization": "Basic !!not-base64"})
        assert r.status_code == 401 and "curl -u user:password" in r.json()["error"]
        assert httpx.get(url + "config").status_code == 401  # the web app keeps its own login
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err


def test_no_cors_unless_origins_are_named(library):
    from rag.errors import ConfigError
    from ui.access import resolve_cors_origins

    assert resolve_cors_origins({}) == []
    assert resolve_cors_origins({"RAG_CORS_ORIGINS": "https://tools.example.org, http://localhost:3000/"}) == [
        "https://tools.example.org",
        "http://localhost:3000",
    ]
    for bad in ("*", "tools.example.org", "https://tools.example.org/path", "ftp://x.org"):
        with pytest.raises(ConfigError, match="RAG_CORS_ORIGINS"):
            resolve_cors_origins({"RAG_CORS_ORIGINS": bad})

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with running_app(library) as url, httpx.Client(base_url=url + "api/", timeout=60) as http:
        for origin in ("http://localhost:3000", "https://evil.example"):
            r = http.post("ask", json={"question": SEED_QUESTION}, headers={"Origin": origin})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
            r = http.options("ask", headers={"Origin": origin, **preflight})
            assert "access-control-allow-origin" not in r.headers
    with (
        running_app(library, cors_origins=["https://tools.example.org"]) as url,
        httpx.Client(base_url=url + "api/", timeout=60) as http,
    ):
        r = http.options("ask", headers={"Origin": "https://tools.example.org", **preflight})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://tools.example.org"
        r = http.post("ask", json={"question": SEED_QUESTION}, headers={"Origin": "https://tools.example.org"})
        assert r.headers["access-control-allow-origin"] == "https://tools.example.org"
        r = http.options("ask", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in r.headers


# -- load -----------------------------------------------------------------------------------------------------------


def test_fifty_parallel_asks_all_answered_at_most_four_at_once(api, library, monkeypatch):
    from ui.app import QUEUE_WORKERS

    questions = [
        SEED_QUESTION,
        "When is the budget vote?",
        "ferry crossing",
        "Who was elected mayor?",
        "What is the boiling point of mercury?",
    ]
    expected = {q: same(library.ask(q).to_dict()) for q in questions}
    running, peak, lock = 0, 0, threading.Lock()
    real_ask = library.ask

    def counted(*args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)  # long enough that the requests overlap
            return real_ask(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(library, "ask", counted)
    start = threading.Barrier(50)

    def one(i: int):
        q = questions[i % len(questions)]
        start.wait()
        r = api.post("ask", json={"question": q})
        return q, r.status_code, r.json()

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert len(results) == 50
    for q, status, got in results:
        assert status == 200 and got == expected[q], q
    assert peak == QUEUE_WORKERS
