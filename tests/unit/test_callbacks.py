"""Kamailio's route.invite callback: valid INVITEs are routed and recorded, anything else is answered
with a JSON-RPC error that names the problem, and nothing of it reaches the store."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from controller.config import load_config
from controller.metrics import Metrics
from controller.service.callbacks import MAX_CALL_ID, MAX_TEXT, Callbacks

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)

PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602

# what Kamailio's route[ASK_CONTROLLER] sends for a client calling the DID of extension 100
INVITE: dict[str, Any] = {
    "call_id": "call-1", "from_tag": "ft-1", "source_ip": "127.0.0.2", "source_port": 5060,
    "from_user": "+79161112233", "from_domain": "127.0.0.2", "ruri_user": "+74951110000", "ruri_domain": "127.0.0.1",
    "peer": "trunk",
}


class FakeStore:
    """The ConversationStore methods Callbacks uses, in memory; every write is kept in `writes`."""

    def __init__(self, legs: dict[str, dict[str, Any]] | None = None) -> None:
        self.legs = legs or {}
        self.writes: list[tuple[Any, ...]] = []

    async def append_event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        self.writes.append(("append_event", event, conversation_id, fields))

    async def create_conversation(self, conversation_id: str, call_id: str, fields: dict[str, Any]) -> None:
        self.writes.append(("create_conversation", conversation_id, call_id, fields))

    async def get_leg(self, leg_id: str) -> dict[str, Any] | None:
        return self.legs.get(leg_id)


def make_callbacks(store: FakeStore, metrics: Metrics | None = None) -> Callbacks:
    return Callbacks(CONFIG, store, metrics or Metrics())  # type: ignore[arg-type]  # duck-typed store


def request(params: Any, *, method: str = "route.invite", id: Any = "call-1") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).encode()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


async def test_an_incoming_call_is_routed_and_recorded(store: FakeStore) -> None:
    reply = await make_callbacks(store).handle(request(INVITE))
    assert reply is not None
    assert reply["id"] == "call-1"
    result = reply["result"]
    assert (result["action"], result["direction"], result["origin"]) == ("route", "incoming",
                                                                         "did:+74951110000->extension:100")
    [(kind, conversation, call_id, fields)] = store.writes
    assert (kind, conversation, call_id) == ("create_conversation", result["conversation"], "call-1")
    assert (fields["from_tag"], fields["from"], fields["to"]) == ("ft-1", "+79161112233", "+74951110000")
    assert fields["client_number"] == "+79161112233"


async def test_a_transfer_leg_claim_from_outside_the_node_is_refused(store: FakeStore) -> None:
    """Only Kamailio's own INVITEs (peer "node") may name a leg the controller originated."""
    reply = await make_callbacks(store).handle(request(INVITE | {"xfer_leg": "conv-9.t1.b1", "peer": "trunk"}))
    assert reply is not None and reply["error"]["code"] == INVALID_PARAMS and "xfer_leg" in reply["error"]["message"]
    assert store.writes == []


async def test_a_flood_of_rejected_calls_from_one_source_is_counted_not_written(store: FakeStore) -> None:
    callbacks = make_callbacks(store)
    for i in range(200):
        reply = await callbacks.handle(request(INVITE | {"ruri_user": "+74959999999", "call_id": f"flood-{i}"}))
        assert reply is not None and reply["result"]["code"] == 404  # every one is still refused
    assert len(store.writes) == 20
    other = INVITE | {"ruri_user": "+74959999999", "source_ip": "127.0.0.22", "call_id": "other"}
    await callbacks.handle(request(other))
    assert len(store.writes) == 21  # another source has its own allowance


async def test_a_rejected_call_is_recorded_as_an_event(store: FakeStore) -> None:
    reply = await make_callbacks(store).handle(request(INVITE | {"ruri_user": "+74959999999"}))
    assert reply is not None
    assert reply["result"] == {"action": "reject", "code": 404, "reason": "Not Found", "cause": "unknown_did"}
    [(kind, event, _conversation, fields)] = store.writes
    assert (kind, event) == ("append_event", "call.rejected")
    assert (fields["call_id"], fields["source"], fields["to"]) == ("call-1", "127.0.0.2:5060", "+74959999999")


async def test_from_tag_is_optional(store: FakeStore) -> None:
    params = {k: v for k, v in INVITE.items() if k != "from_tag"}
    reply = await make_callbacks(store).handle(request(params))
    assert reply is not None
    assert reply["result"]["action"] == "route"
    assert store.writes[0][3]["from_tag"] == ""


async def test_the_longest_accepted_values_are_routed_unchanged(store: FakeStore) -> None:
    call_id, tag = "c" * MAX_CALL_ID, "t" * MAX_TEXT
    reply = await make_callbacks(store).handle(request(INVITE | {"call_id": call_id, "from_tag": tag}))
    assert reply is not None
    assert reply["result"]["action"] == "route"
    # the call-id is a Redis key that later notifications look up: it must be stored whole
    assert store.writes[0][2] == call_id
    assert store.writes[0][3]["from_tag"] == tag


async def test_a_transfer_leg_is_looked_up_not_decided() -> None:
    leg = {"call_id": "leg-call", "conversation": "conv-9", "targets": [{"uri": "sip:101@acme.test"}],
           "ring_timeout_ms": "20000"}
    store = FakeStore({"conv-9.t1.b1": leg})
    callbacks = make_callbacks(store)
    leg_invite = INVITE | {"call_id": "leg-call", "xfer_leg": "conv-9.t1.b1", "peer": "node"}
    reply = await callbacks.handle(request(leg_invite))
    assert reply is not None
    assert reply["result"]["conversation"] == "conv-9"
    assert reply["result"]["ring_timeout_ms"] == 20000
    # a leg id with someone else's call-id is refused
    reply = await callbacks.handle(request(INVITE | {"call_id": "other", "xfer_leg": "conv-9.t1.b1", "peer": "node"}))
    assert reply is not None
    assert reply["result"]["cause"] == "unknown_transfer_leg"
    assert store.writes == []


async def test_an_empty_xfer_leg_is_an_ordinary_call(store: FakeStore) -> None:
    reply = await make_callbacks(store).handle(request(INVITE | {"xfer_leg": ""}))
    assert reply is not None
    assert reply["result"]["direction"] == "incoming"


async def test_a_notification_gets_no_reply(store: FakeStore) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "route.invite", "params": INVITE}).encode()
    assert await make_callbacks(store).handle(body) is None


def _with(**changes: Any) -> bytes:
    return request(INVITE | changes)


def _literal(name: str, literal: str) -> bytes:
    """A request whose param `name` is written as `literal`, which json.dumps would never write."""
    return _with(**{name: "@@"}).replace(b'"@@"', literal.encode())


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        (b"{not json", PARSE, "parse error"),
        (b"\xff\xfe", PARSE, "parse error"),
        (request(INVITE).decode().encode("utf-16"), PARSE, "parse error"),  # JSON-RPC text is UTF-8
        (_literal("source_port", "Infinity"), PARSE, "Infinity"),
        (_literal("source_port", "-Infinity"), PARSE, "Infinity"),
        (_literal("source_port", "NaN"), PARSE, "NaN"),
        (_literal("source_port", "1e999"), PARSE, "out of range"),
        (b"[]", INVALID_REQUEST, "batch"),
        (b'"route.invite"', INVALID_REQUEST, "object"),
        (request(INVITE, method="route.nothing"), NO_METHOD, "route.nothing"),
        (request([INVITE]), INVALID_PARAMS, "params"),
        (request(None), INVALID_PARAMS, "params"),
        (request({k: v for k, v in INVITE.items() if k != "source_port"}), INVALID_PARAMS, "source_port"),
        (_with(source_port=5060.0), INVALID_PARAMS, "source_port"),
        (_with(source_port=True), INVALID_PARAMS, "source_port"),
        (_with(source_port="5060"), INVALID_PARAMS, "source_port"),
        (_with(source_port=-1), INVALID_PARAMS, "source_port"),
        (_with(source_port=65536), INVALID_PARAMS, "source_port"),
        (_with(source_port=10**40), INVALID_PARAMS, "source_port"),
        (_with(source_ip="not-an-ip"), INVALID_PARAMS, "source_ip"),
        (_with(source_ip=2130706434), INVALID_PARAMS, "source_ip"),
        (_with(call_id="c" * (MAX_CALL_ID + 1)), INVALID_PARAMS, "call_id"),
        (_with(call_id="c" * 100_000), INVALID_PARAMS, "call_id"),
        (_with(call_id=42), INVALID_PARAMS, "call_id"),
        (_with(from_user="u" * (MAX_TEXT + 1)), INVALID_PARAMS, "from_user"),
        (_with(from_user=None), INVALID_PARAMS, "from_user"),
        (_with(from_domain={"a": [1, {"b": []}]}), INVALID_PARAMS, "from_domain"),
        (_with(ruri_user=["+74951110000"]), INVALID_PARAMS, "ruri_user"),
        (_with(ruri_domain="\ud800"), INVALID_PARAMS, "ruri_domain"),  # a lone surrogate is no UTF-8 text
        (_with(from_tag=7), INVALID_PARAMS, "from_tag"),
        (_with(xfer_leg=["leg"]), INVALID_PARAMS, "xfer_leg"),
        (_with(xfer_leg="x" * (MAX_TEXT + 1)), INVALID_PARAMS, "xfer_leg"),
    ],
)
async def test_bad_input_gets_a_json_rpc_error_and_writes_nothing(
    store: FakeStore, body: bytes, code: int, names: str
) -> None:
    reply = await make_callbacks(store).handle(body)
    assert reply is not None
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code
    assert names in reply["error"]["message"]
    assert len(reply["error"]["message"]) <= 200
    # an error found after parsing answers the request's id
    assert reply["id"] == (None if code in (PARSE, INVALID_REQUEST) else "call-1")
    assert store.writes == []
    json.dumps(reply)  # what service.handle_rpc sends must be serialisable


async def test_an_unknown_method_name_is_clipped_in_the_reply_and_the_log(
    store: FakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="controller.service.callbacks"):
        reply = await make_callbacks(store).handle(request(INVITE, method="m" * 50_000, id=3))
    assert reply is not None
    assert reply["error"]["code"] == NO_METHOD
    assert reply["id"] == 3
    assert len(reply["error"]["message"]) < MAX_TEXT + 50
    assert all(len(record.getMessage()) < 600 for record in caplog.records)


async def test_log_lines_of_a_routed_call_are_bounded(store: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    longest = INVITE | {"call_id": "c" * MAX_CALL_ID, "from_user": "u" * MAX_TEXT, "ruri_user": "r" * MAX_TEXT}
    with caplog.at_level(logging.DEBUG, logger="controller.service.callbacks"):
        await make_callbacks(store).handle(request(longest))
        await make_callbacks(store).handle(_with(call_id="c" * 100_000))
    assert len(caplog.records) == 2
    assert all(len(record.getMessage()) < 1024 for record in caplog.records)


async def test_metric_labels_do_not_grow_with_what_peers_send(store: FakeStore) -> None:
    metrics = Metrics()
    callbacks = make_callbacks(store, metrics)
    for n in range(200):
        await callbacks.handle(request(INVITE, method=f"made.up.{n}"))
    await callbacks.handle(request(INVITE))
    labels = {sample.labels["method"] for metric in metrics.registry.collect()
              if metric.name in ("xfer_callbacks", "xfer_callback_seconds") for sample in metric.samples}
    assert labels == {"?", "route.invite"}
