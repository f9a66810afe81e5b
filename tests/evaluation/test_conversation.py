"""Follow-up questions through the whole engine (real model and reader): history in `Index.query`, `search` and
`rag.query`, read_as in the answer, topic shifts left alone, malformed history refused, and `rag eval conversations`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import QuestionError, SourceError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "conversation"
FIRST = "How many jobs is ABN Amro cutting?"
FOLLOW = "How many will go in IT?"
SHIFT = "Who coaches Wales?"

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def conv_index(tmp_path_factory, model_embedder):
    from rag import build_index, open_index

    folder = tmp_path_factory.mktemp("conversation") / "index"
    build_index(FIXTURE / "articles.jsonl", folder, embedder=model_embedder)
    return open_index(folder, embedder=model_embedder)


def test_follow_up_is_read_with_the_previous_answer(conv_index):
    first = conv_index.query(FIRST)
    assert first.citations[0].doc_id == "bank/001" and "2,850" in first.citations[0].quote
    follow = conv_index.query(FOLLOW, history=[first])
    assert follow.follows == 1
    assert "ABN Amro" in follow.read_as
    assert follow.citations[0].doc_id == "bank/001"
    assert "1,500" in follow.citations[0].quote
    d = follow.to_dict()
    assert d["read_as"] == follow.read_as and d["follows"] == 1


def test_history_given_as_json_of_earlier_answers_reads_the_same(conv_index):
    first = conv_index.query(FIRST)
    as_json = json.loads(json.dumps([{"question": FIRST, "answer": first.to_dict()}]))
    assert conv_index.query(FOLLOW, history=as_json).to_dict() == conv_index.query(FOLLOW, history=[first]).to_dict()


def test_no_history_answers_exactly_as_before(conv_index):
    alone = conv_index.query(FOLLOW).to_dict()
    assert alone["read_as"] is None and alone["follows"] is None
    assert conv_index.query(FOLLOW, history=[]).to_dict() == alone
    assert conv_index.query(FOLLOW, history=None).to_dict() == alone


def test_topic_shift_is_not_pulled_back(conv_index):
    first = conv_index.query(FIRST)
    alone = conv_index.query(SHIFT)
    shifted = conv_index.query(SHIFT, history=[first])
    assert shifted.read_as is None and shifted.follows is None
    assert shifted.to_dict() == alone.to_dict()
    assert "Mike Ruddock" in shifted.citations[0].quote


def test_third_turn_follows_the_second(conv_index):
    first = conv_index.query(FIRST)
    second = conv_index.query(FOLLOW, history=[first])
    third = conv_index.query("Who is its chief executive?", history=[first, second])
    assert third.follows == 2 and third.read_as == "Who is ABN Amro's chief executive?"
    assert third.citations[0].doc_id == "bank/001" and "Rijkman Groenink" in third.citations[0].quote


def test_search_takes_history_too(conv_index):
    first = conv_index.query(FIRST)
    passages = conv_index.search(FOLLOW, k=1, history=[first])
    assert passages[0].doc_id == "bank/001"


@pytest.mark.parametrize("history", ["not a list", [{"no": "question"}], [None], [{"question": 3}]])
def test_malformed_history_is_a_clear_error(conv_index, history):
    with pytest.raises(QuestionError, match="history"):
        conv_index.query(FOLLOW, history=history)


def test_huge_history_is_trimmed_not_fatal(conv_index):
    first = conv_index.query(FIRST)
    history = [{"question": "x" * 100_000}] * 3000 + [first]
    assert conv_index.query(FOLLOW, history=history).follows == 3001


def test_eval_conversations_reports_each_way_of_asking(conv_index, tmp_path):
    from rag.evaluation.conversations import format_conversations, load_conversations, run_conversations

    rows = [
        {
            "id": "c1",
            "kind": "followup",
            "split": "fit",
            "turns": [
                {"question": FIRST, "doc_id": "bank/001", "answers": ["2,850"]},
                {
                    "question": FOLLOW,
                    "standalone": "How many ABN Amro jobs will go in IT?",
                    "doc_id": "bank/001",
                    "answers": ["1,500"],
                },
            ],
        },
        {
            "id": "s1",
            "kind": "shift",
            "split": "report",
            "turns": [
                {"question": FIRST, "doc_id": "bank/001", "answers": ["2,850"]},
                {"question": SHIFT, "doc_id": "sport/001", "answers": ["Mike Ruddock"]},
            ],
        },
    ]
    path = tmp_path / "convs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = run_conversations(conv_index, load_conversations(path))
    r = report["rows"]
    assert r["first"]["n"] == 2 and r["first"]["answers"] == 1.0
    assert r["followup_history"]["answers"] == 1.0 and r["followup_history"]["read_as_followup"] == 1.0
    assert r["shift_history"]["answers"] == r["shift_alone"]["answers"] == 1.0
    assert r["shift_history"]["read_as_followup"] == 0.0
    table = format_conversations(report, str(path))
    assert "follow-ups, with history" in table and "topic shifts, with history" in table
    assert len(load_conversations(path, "fit")) == 1


def test_eval_conversations_refuses_bad_sets(tmp_path, conv_index):
    from rag.evaluation.conversations import load_conversations, run_conversations

    with pytest.raises(SourceError, match="does not exist"):
        load_conversations(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "kind": "followup", "turns": []}\n', encoding="utf-8")
    with pytest.raises(SourceError, match="line 1"):
        load_conversations(bad)
    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps(
            {
                "id": "x",
                "kind": "shift",
                "turns": [
                    {"question": "a?", "doc_id": "nope/1", "answers": ["a"]},
                    {"question": "b?", "doc_id": "nope/2", "answers": ["b"]},
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SourceError, match="lacks 2 article"):
        run_conversations(conv_index, load_conversations(other))


def test_history_is_never_written_to_disk(conv_index, caplog):
    import logging

    def snapshot():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in conv_index.index_dir.rglob("*") if p.is_file()}

    before = snapshot()
    secret = "Zebra-Quokka-7731 asked this earlier"
    with caplog.at_level(logging.DEBUG):
        conv_index.query(FOLLOW, history=[{"question": secret}])
    assert snapshot() == before
    assert secret not in caplog.text
    for p in before:
        assert secret.encode() not in p.read_bytes()


@pytest.mark.shared
@pytest.mark.slow
def test_conversation_floor_on_the_report_part(bbc_index_dir, model_embedder):
    """The report part of bench/conversations.jsonl over the full BBC index (docs/quality.md, "Follow-up
    questions"): follow-ups read with history stay well above asking them alone, and topic shifts lose nothing."""
    from rag import open_index
    from rag.evaluation.conversations import load_conversations, run_conversations

    floor = json.loads((Path(__file__).parents[1] / "quality_floor.json").read_text(encoding="utf-8"))["conversations"]
    idx = open_index(bbc_index_dir, embedder=model_embedder)
    try:
        rows = run_conversations(
            idx, load_conversations(Path(__file__).parents[2] / "bench" / "conversations.jsonl", "report")
        )["rows"]
    finally:
        idx.close()
    with_history, alone = rows["followup_history"]["answers"], rows["followup_alone"]["answers"]
    assert with_history >= floor["followup_history"], rows
    assert with_history - alone >= floor["gain_over_alone"], rows
    assert rows["shift_history"]["answers"] >= rows["shift_alone"]["answers"] - floor["shift_loss"], rows
    assert rows["shift_history"]["read_as_followup"] <= floor["shift_read_as_followup"], rows
