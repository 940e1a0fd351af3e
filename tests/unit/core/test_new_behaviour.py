"""The explicit changes of the redesign: conference key off, dialog takeover, looped media replay, schema 2."""

from __future__ import annotations

import json

import pytest

from controller.core import (
    SCHEMA_VERSION,
    BridgeMedia,
    Conversation,
    ConversationState,
    EndConversation,
    EndLeg,
    LegAnswered,
    LegHungUp,
    LegRinging,
    PassDigit,
    PlayHoldMusic,
    PlayRingback,
    PromptRef,
    SetDialogTakeover,
    Settings,
    TalkOptions,
    TargetKind,
    TargetResolved,
    TransferRequested,
    TransferState,
)
from controller.core.media import Media, MediaCommands, Overlay

from ._helpers import CLIENT, KNOWN, A, leg_b, make_settings, press, start, to_consulting, to_ringing

C, T = ConversationState, TransferState
B1 = leg_b(1)
TAKE, FREE = SetDialogTakeover(A), SetDialogTakeover(None)


# -- the conference key: `#` again by default, or none ---------------------------------------------


def test_the_conference_key_is_hash_again_by_default():
    assert TalkOptions().conference == "#"
    TalkOptions(back="#", conference=None)  # no conference key: nothing for "back" to collide with


@pytest.mark.parametrize("pass_other_digits", [True, False])
def test_without_a_conference_key_hash_is_an_ordinary_digit_while_consulting(direction, pass_other_digits):
    settings = Settings(known_extensions=KNOWN, pass_other_digits=pass_other_digits,
                        talk_options=TalkOptions(conference=None))
    conv = start(direction, settings=settings)
    to_consulting(conv)
    actions = press(conv, "#")
    assert actions == ([PassDigit(A, "#")] if pass_other_digits else [])
    assert conv.effective_state is T.CONSULTING  # no conference
    assert press(conv, "*")  # the back key still works
    assert conv.state is C.TALKING


def test_with_a_conference_key_hash_starts_it(direction):
    conv = start(direction, settings=make_settings(talk_options=TalkOptions(conference="#")))
    to_consulting(conv)
    press(conv, "#")
    assert conv.state is C.CONFERENCE


# -- Kamailio's dialog takeover -------------------------------------------------------------------


def test_takeover_while_a_transfer_runs_and_back(direction):
    conv = start(direction)
    assert conv.takeover is None
    assert press(conv, "#")[-1] == TAKE
    assert conv.takeover == A
    actions = press(conv, "*")
    assert actions[-1] == FREE and conv.takeover is None


def test_takeover_stays_once_a_has_left_and_ends_before_the_end(direction):
    conv = start(direction)
    to_consulting(conv)
    actions = conv.handle(LegHungUp(A))  # attended transfer: A's dialog is gone, the client's goes on
    assert TAKE not in actions and FREE not in actions and conv.takeover == A
    assert conv.state is C.TALKING and conv.transfer is None
    actions = conv.handle(LegHungUp(B1))  # B, the transferor now, hangs up the plain call
    assert actions == [EndLeg(CLIENT, "transferor_hung_up"), FREE, EndConversation("transferor_hung_up")]
    assert conv.takeover is None


def test_a_refused_request_changes_no_takeover(direction):
    conv = start(direction)
    actions = conv.handle(TransferRequested("100"))  # A's own number: refused within the same event
    assert not [a for a in actions if isinstance(a, SetDialogTakeover)]


def test_no_takeover_without_a_transfer(direction):
    conv = start(direction)
    assert conv.handle(LegHungUp(A)) == [EndLeg(CLIENT, "transferor_hung_up"), EndConversation("transferor_hung_up")]


def test_takeover_is_in_the_snapshot(direction):
    conv = start(direction)
    press(conv, "#")
    restored = Conversation.from_dict(json.loads(json.dumps(conv.to_dict())))
    assert restored.takeover == A and restored.to_dict()["takeover"] == A
    assert press(restored, "*")[-1] == FREE


# -- looped media replayed after a re-pairing -------------------------------------------------------


def test_hold_music_is_replayed_after_every_bridge(direction):
    conv = start(direction)
    to_ringing(conv)
    actions = conv.handle(LegRinging(B1, early_media=True))
    assert actions[-2:] == [BridgeMedia(A, B1), PlayHoldMusic(CLIENT, PromptRef.system("default"))]


def test_the_tenants_hold_music_is_replayed(direction):
    music = PromptRef.file("default", "/srv/acme/hold.wav")
    conv = start(direction, settings=make_settings(hold_music=music))
    to_ringing(conv)
    assert conv.handle(LegAnswered(B1))[-1] == PlayHoldMusic(CLIENT, music)


def test_the_media_model_replays_every_loop_sorted_by_leg():
    out: list = []
    media = MediaCommands(Media(), out, PromptRef.system("default"))
    media.play_hold("z")
    media.play_ringback("m")
    media.play_prompt("p", PromptRef.system("beep"), awaited=True)  # a prompt is no loop
    out.clear()
    media.bridge("a", "b")
    assert out == [BridgeMedia("a", "b"), PlayRingback("m"), PlayHoldMusic("z")]
    assert media.overlay_of("p") is Overlay.PROMPT


# -- the snapshot -------------------------------------------------------------------------------


def test_schema_2_and_an_older_snapshot_is_refused(direction):
    conv = start(direction)
    d = conv.to_dict()
    assert SCHEMA_VERSION == 2 and d["schema"] == 2
    with pytest.raises(ValueError, match="schema 1"):
        Conversation.from_dict({**d, "schema": 1})


def test_the_snapshot_is_json_and_complete(direction):
    conv = start(direction, settings=make_settings(hold_music="file:default:/srv/hold.wav"))
    assert conv.handle(TransferRequested("201"))[-1] == TAKE
    conv.handle(LegHungUp(A))
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    d = json.loads(json.dumps(conv.to_dict()))
    restored = Conversation.from_dict(d)
    assert restored.to_dict() == d
    assert restored.effective_state is T.BLIND_RINGING
    assert restored.settings.hold_music == PromptRef.file("default", "/srv/hold.wav")
    assert restored.legs[B1].kind is TargetKind.EXTENSION and restored.transfer.branches == [B1]
