"""The app's `ask` and `search` functions: Gradio API endpoints (/ask, /search) that return dicts and, with --mcp,
the MCP tools (ask_json, search_json) that return JSON text.

ui.app registers them; the JSON API at /api is ui.api.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import gradio as gr

from rag.errors import QuestionError, RagError
from rag.library.library import Library

__all__ = ["api_functions", "mcp_tools", "parse_history_json"]


def parse_history_json(history: object) -> list | None:
    """The `history` argument of the /ask endpoint and MCP tool: JSON text of a list of turns (a list is taken as is).

    Raises:
        QuestionError: the text is not JSON.
    """
    if history is None or history == "" or history == []:
        return None
    if isinstance(history, (list, tuple)):
        return list(history)
    if not isinstance(history, str):
        raise QuestionError(f"history must be JSON text of a list of earlier turns, got {type(history).__name__}")
    try:
        return json.loads(history)
    except json.JSONDecodeError as exc:
        raise QuestionError(
            f"history is not JSON ({exc.msg} at character {exc.pos}); send a JSON list of earlier "
            'turns, each a question or {"question": ..., "answer": ...}'
        ) from None


def _ids(text: str | None) -> list[str] | None:
    """Article ids from an endpoint's comma-separated text (None when empty)."""
    ids = [i.strip() for i in (text or "").split(",") if i.strip()]
    return ids or None


def api_functions(library: Library, default_k: int) -> tuple[Callable[..., dict], Callable[..., list[dict]]]:
    """The /ask and /search endpoints: Answer.to_dict() and passages as dicts; a RagError becomes a gr.Error."""

    def ask(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
        history: str = "",
    ) -> dict:
        """Answer a question with quoted sentences from the indexed articles, each with a citation, or abstain.

        Args:
            question: the question, in plain words.
            k: how many passages to retrieve (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (passages newest article first).
            history: the conversation so far, as JSON: a list of earlier turns, oldest first, each a question or
                {"question": ..., "answer": <an earlier answer>}; empty for a standalone question.

        Returns:
            Answer.to_dict(): text, abstained, confidence, citations (doc_id, title, source, start, end, quote, date,
            section, outlet), passages, read_as and follows (how a follow-up was read).
        """
        try:
            return library.ask(
                question,
                int(k),
                _ids(doc_ids),
                since=since,
                until=until,
                section=section,
                outlet=outlet,
                sort=sort,
                history=parse_history_json(history),
            ).to_dict()
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    def search(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
    ) -> list[dict]:
        """The k passages of the indexed articles that best match a query, best first, with scores.

        Args:
            question: what to look for.
            k: how many passages to return (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (newest article first).

        Returns:
            a list of passages (doc_id, title, source, start, end, text, score, date, section, outlet).
        """
        try:
            return [
                p.to_dict()
                for p in library.search(
                    question, int(k), _ids(doc_ids), since=since, until=until, section=section, outlet=outlet, sort=sort
                )
            ]
        except RagError as exc:
            raise gr.Error(str(exc)) from None

    return ask, search


def mcp_tools(library: Library, default_k: int) -> tuple[Callable[..., str], Callable[..., str]]:
    def ask(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
        history: str = "",
    ) -> str:
        """Answer a question with sentences quoted from the indexed articles, each cited by article and character span.

        Args:
            question: the question, in plain words.
            k: how many passages to retrieve (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (passages newest article first).
            history: the conversation so far, as JSON text: a list of the earlier questions, oldest first, each a
                string or {"question": ..., "answer": <the JSON this tool returned for it>}, so a follow-up such as
                "How old is he?" is read with them; empty for a standalone question.

        Returns:
            JSON: {text, abstained, confidence, short_answer, citations: [{number, doc_id, title, source, start, end,
            quote, answer, answer_start, answer_end, date, section, outlet}], passages, read_as, follows}. `answer` is
            the short answer inside the quote (document offsets answer_start/answer_end), when the reader found one.
            When abstained is true, no passage answers the question and the nearest passages are listed instead.
            `read_as` is the question as it was read when it followed an earlier turn (`follows`: which one).
        """
        try:
            return json.dumps(
                library.ask(
                    question,
                    int(k),
                    _ids(doc_ids),
                    since=since,
                    until=until,
                    section=section,
                    outlet=outlet,
                    sort=sort,
                    history=parse_history_json(history),
                ).to_dict(),
                ensure_ascii=False,
            )
        except RagError as exc:
            return json.dumps({"error": str(exc)})

    def search(
        question: str,
        k: int = default_k,
        since: str = "",
        until: str = "",
        section: str = "",
        outlet: str = "",
        doc_ids: str = "",
        sort: str = "relevance",
    ) -> str:
        """Find the passages of the indexed articles that best match a query, best first, with scores.

        Args:
            question: what to look for.
            k: how many passages to return (1-100).
            since: only articles published on or after this date (YYYY-MM-DD, YYYY-MM or YYYY); empty for no bound.
            until: only articles published on or before this date; empty for no bound.
            section: only articles of these sections (comma-separated); empty for all.
            outlet: only articles from these outlets (comma-separated); empty for all.
            doc_ids: only these article ids (comma-separated); empty for all.
            sort: "relevance" or "newest" (newest article first).

        Returns:
            JSON list of passages: [{doc_id, title, source, start, end, text, score, date, section, outlet}].
        """
        try:
            return json.dumps(
                [
                    p.to_dict()
                    for p in library.search(
                        question,
                        int(k),
                        _ids(doc_ids),
                        since=since,
                        until=until,
                        section=section,
                        outlet=outlet,
                        sort=sort,
                    )
                ],
                ensure_ascii=False,
            )
        except RagError as exc:
            return json.dumps({"error": str(exc)})

    return ask, search
