"""A batch of Kamailio's notifications is applied per conversation in stream order, conversations
side by side."""

from __future__ import annotations

from controller.service.notifications import group_by_conversation


def note(method: str, call_id: str) -> tuple[str, dict]:
    return method, {"call_id": call_id}


def test_each_conversation_keeps_its_stream_order() -> None:
    batch = [note("call.answered", "c1"), note("leg.ringing", "b1"), note("call.answered", "c2"),
             note("call.answered", "b1"), note("call.ended", "c1"), note("call.ended", "c2")]
    conversations = ["conv-1", "conv-1", "conv-2", "conv-1", "conv-1", "conv-2"]
    groups = group_by_conversation(batch, conversations)
    assert [[(m, p["call_id"], c) for m, p, c in group] for group in groups] == [
        # the client's dialog and B's leg belong to one conversation: one run, in the order Kamailio wrote
        [("call.answered", "c1", "conv-1"), ("leg.ringing", "b1", "conv-1"), ("call.answered", "b1", "conv-1"),
         ("call.ended", "c1", "conv-1")],
        [("call.answered", "c2", "conv-2"), ("call.ended", "c2", "conv-2")],
    ]


def test_calls_no_conversation_knows_are_runs_of_their_own() -> None:
    batch = [note("call.rejected", "x1"), note("call.failed", "x2"), note("call.ended", "x1")]
    groups = group_by_conversation(batch, [None, None, None])
    assert [[(m, p["call_id"], c) for m, p, c in group] for group in groups] == [
        [("call.rejected", "x1", ""), ("call.ended", "x1", "")],
        [("call.failed", "x2", "")],
    ]


def test_an_empty_batch_has_no_runs() -> None:
    assert group_by_conversation([], []) == []
