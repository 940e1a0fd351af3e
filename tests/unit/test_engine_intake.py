"""How Kamailio's notifications about a conversation's dialogs become state-machine events."""

from __future__ import annotations

import itertools

import pytest

from controller.core import LegAnswered, LegFailed, LegHungUp, LegRinging
from controller.core.states import ConversationState as C
from controller.core.states import TransferState as T
from controller.engine.context import ConversationIO, time_steps
from controller.engine.intake import client_dialog_event, leg_event


def io(direction: str = "incoming") -> ConversationIO:
    client, a = ("ctag", "atag") if direction == "incoming" else ("atag", "ctag")
    conv = ConversationIO("conv", "acme", direction, "call-1", client if direction == "incoming" else a,
                          a if direction == "incoming" else client, "ctag" if direction == "incoming" else "atag",
                          "atag" if direction == "incoming" else "ctag")
    conv.legs["conv.t1.b1"] = {"call_id": "xfer-b", "from_tag": "", "to_tag": ""}
    return conv


@pytest.mark.parametrize(("method", "params", "expected"), [
    ("leg.ringing", {"code": 180}, LegRinging("L")),
    ("call.answered", {}, LegAnswered("L")),
    ("call.failed", {"code": 486}, LegFailed("L", 486)),
    ("call.failed", {"code": 200}, LegFailed("L", 0)),  # not a failure status: "no response"
    ("call.rejected", {"code": 480}, LegFailed("L", 480)),
    ("call.ended", {}, LegHungUp("L")),
    ("something.else", {}, None),
])
def test_leg_notifications(method: str, params: dict, expected: object) -> None:
    assert leg_event("L", method, params) == expected


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_who_hung_up_the_client_dialog(direction: str) -> None:
    conv = io(direction)
    assert client_dialog_event(conv, "leg.hungup", {}) == LegHungUp(conv.transferor_tag)
    for tag in (conv.client_tag, conv.transferor_tag):
        assert client_dialog_event(conv, "call.ended", {"by_tag": tag}) == LegHungUp(tag)
    # no BYE sender known (dialog timeout, our own BYE): the conversation's client side is over
    assert client_dialog_event(conv, "call.ended", {}) == LegHungUp(conv.client_tag)
    assert client_dialog_event(conv, "call.answered", {}) is None


def test_leg_lookup_and_dialog_sides() -> None:
    conv = io("incoming")
    assert conv.leg_for_call("xfer-b") == "conv.t1.b1" and conv.leg_for_call("other") is None
    assert conv.side_of("ctag") == "caller" and conv.side_of("atag") == "callee"
    outgoing = io("outgoing")
    assert conv.side_of(conv.client_tag) == "caller" and outgoing.side_of(outgoing.client_tag) == "callee"


def test_step_times_add_up_per_transfer_state() -> None:
    clock = iter([1000, 1400, 1500, 5500, 5600])
    conv = io()
    path = [C.TALKING, T.COLLECTING, T.RESOLVING, T.BLIND_RINGING, T.RINGING_TRANSFEROR, C.TALKING]
    for before, after in itertools.pairwise(path):
        time_steps(conv, before, after, next(clock))
    time_steps(conv, C.TALKING, C.TALKING, 99_999)  # no change: the time is not used
    assert conv.steps_ms == {"collecting": 400, "resolving": 100, "blind_ringing": 4000, "ringing_transferor": 100}
    assert conv.step_since_ms == 5600
