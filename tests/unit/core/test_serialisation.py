"""Snapshots: ``to_dict``/``from_dict`` round trips and continuing after a restart."""

from __future__ import annotations

import json

import pytest

from controller.core import (
    SCHEMA_VERSION,
    Conversation,
    DigitPressed,
    FallbackPolicy,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PromptFinished,
    TargetKind,
    TargetResolved,
    TimerFired,
)

from ._helpers import CLIENT, A, leg_b, make_settings, start

B1, B2 = leg_b(1), leg_b(2)


def script(conv):
    """A long conversation touching most of the state: yields after every event."""
    for digit in "#55":
        yield DigitPressed(A, digit)
    yield TimerFired(next(iter(conv.active_timers)))
    yield TargetResolved("t1", ("201", "202"), TargetKind.DEPARTMENT)
    yield LegRinging(B1, early_media=True)
    yield LegFailed(B1, 486)
    yield LegHungUp(A)
    yield LegFailed(B2, 480)
    yield LegAnswered(f"{conv.id}.t1.r1")
    yield PromptFinished(CLIENT, "warn_c")
    for digit in "#201":
        yield DigitPressed(f"{conv.id}.t1.r1", digit)
    yield TargetResolved("t2", ("201",))
    yield LegAnswered(leg_b(1, 2))
    yield DigitPressed(f"{conv.id}.t1.r1", "#")
    yield LegHungUp(CLIENT)


def fresh(direction):
    return start(direction, settings=make_settings(direction, FallbackPolicy(warn_client_prompt="warn_c")))


def test_round_trip_at_every_step(direction):
    conv = fresh(direction)
    for event in script(conv):
        conv.handle(event)
        snapshot = conv.to_dict()
        encoded = json.dumps(snapshot)  # JSON-safe primitives only
        restored = Conversation.from_dict(json.loads(encoded))
        assert restored.to_dict() == snapshot
        assert restored.version == conv.version
        assert restored.effective_state == conv.effective_state
    assert conv.version == 1 + 19


@pytest.mark.parametrize("restart_after", range(1, 19))
def test_a_restarted_controller_continues_identically(direction, restart_after):
    original, restarted = fresh(direction), fresh(direction)
    original_actions, restarted_actions = [], []
    for index, event in enumerate(script(original)):
        original_actions.append(original.handle(event))
        restarted_actions.append(restarted.handle(event))
        if index == restart_after:
            restarted = Conversation.from_dict(json.loads(json.dumps(restarted.to_dict())))
    assert restarted_actions == original_actions
    assert restarted.to_dict() == original.to_dict()


def test_version_counts_handled_events():
    conv = Conversation("c")
    assert conv.to_dict()["version"] == 0
    conv = start()
    assert conv.version == 1
    conv.handle(DigitPressed(CLIENT, "1"))  # irrelevant, but handled
    assert conv.version == 2


def test_unknown_schema_is_refused():
    d = start().to_dict()
    assert d["schema"] == SCHEMA_VERSION
    d["schema"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError):
        Conversation.from_dict(d)


def test_settings_snapshot_travels_with_the_conversation(direction):
    settings = make_settings(direction, FallbackPolicy(rule="voicemail"), no_answer_timeout_s=33)
    conv = start(direction, settings=settings)
    assert Conversation.from_dict(conv.to_dict()).settings == settings
