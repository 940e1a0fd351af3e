"""Digit streams: talk options and number collection (h11 ``tr()`` style).

Every stream is fed whole, one digit at a time with checks in between, and
with garbage mixed in (digits from the wrong legs, repeated keys, symbols that
are not part of a number).
"""

from __future__ import annotations

import pytest

from controller.core import (
    CancelTimer,
    DigitPressed,
    InvalidTransition,
    LegAnswered,
    OutcomeKind,
    PassDigit,
    PlayPrompt,
    RecordOutcome,
    ResolveTarget,
    SetDialogTakeover,
    Settings,
    StartTimer,
    TalkOptions,
    TargetKind,
    TargetResolved,
    TimerFired,
    TransferState,
)
from controller.core.dtmf import KeyToken, match_digits
from controller.core.states import ConversationState

from ._helpers import (
    CLIENT,
    DIRECTIONS,
    A,
    fire,
    make_settings,
    norm,
    outcome,
    press,
    start,
    timer_names,
)

COLLECTING = TransferState.COLLECTING
RESOLVING = TransferState.RESOLVING
TALKING = ConversationState.TALKING


# -- the tokenizer ----------------------------------------------------------------------


def feed_all(digits: str, keys: dict[str, str]) -> list[KeyToken]:
    buffer, out = "", []
    for digit in digits:
        tokens, buffer = match_digits(buffer, digit, keys)
        out += tokens
    return out


def test_single_symbol_key():
    assert feed_all("1#2", {"transfer": "#"}) == [KeyToken(digit="1"), KeyToken(key="transfer"), KeyToken(digit="2")]


def test_multi_symbol_keys_and_garbage():
    keys = {"back": "##", "conference": "*3"}
    assert feed_all("*3", keys) == [KeyToken(key="conference")]
    assert feed_all("#1##", keys) == [KeyToken(digit="#"), KeyToken(digit="1"), KeyToken(key="back")]
    # "*" waits, "#" breaks it: "*" is released and "#" starts "##".
    tokens, buffer = match_digits("", "*", keys)
    assert (tokens, buffer) == ([], "*")
    tokens, buffer = match_digits(buffer, "#", keys)
    assert (tokens, buffer) == ([KeyToken(digit="*")], "#")


def test_no_active_keys_releases_everything():
    assert feed_all("#*1", {}) == [KeyToken(digit="#"), KeyToken(digit="*"), KeyToken(digit="1")]


# -- number collection ------------------------------------------------------------------


def tr(direction, digits: str, *, garbage: bool) -> tuple[list, object]:
    """Dial ``digits`` after ``#`` and let the inter-digit timer end the number."""
    conv = start(direction)
    actions = press(conv, "#")
    for digit in digits:
        if garbage:
            # the client and an unknown symbol in between change nothing
            assert press(conv, "5#*", leg=CLIENT) == []
            assert press(conv, "#") == []  # a second transfer key is ignored
        actions += press(conv, digit)
        assert conv.effective_state is COLLECTING
    actions += fire(conv, "interdigit")
    return actions, conv


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("garbage", [False, True])
def test_number_ended_by_interdigit_timeout(direction, garbage):
    actions, conv = tr(direction, "2055", garbage=garbage)
    assert conv.effective_state is RESOLVING
    assert ResolveTarget("t1", "2055") in actions
    assert conv.transfer.number == "2055"


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_whole_vs_one_by_one(direction):
    whole = start(direction)
    whole_actions = press(whole, "#101") + fire(whole, "interdigit")
    piecewise = start(direction)
    actions = press(piecewise, "#1")
    assert piecewise.effective_state is COLLECTING
    actions += press(piecewise, "0")
    assert piecewise.effective_state is COLLECTING
    actions += press(piecewise, "1")
    actions += fire(piecewise, "interdigit")
    assert actions == whole_actions
    assert ResolveTarget("t1", "101") in actions


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_interdigit_timer_is_restarted_per_digit(direction):
    conv = start(direction)
    # the transfer starts: Kamailio takes over A's dialog meanwhile
    assert norm(press(conv, "#")) == [StartTimer("interdigit", 10.0), SetDialogTakeover(A)]
    (first,) = timer_names(conv, "interdigit")
    assert norm(press(conv, "1")) == [CancelTimer("interdigit"), StartTimer("interdigit", 2.5)]
    # The old timer fires late (it raced the digit): stale, ignored.
    assert conv.handle(TimerFired(first)) == []
    assert conv.effective_state is COLLECTING


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("digits", "immediate"), [("201", True), ("400", True), ("300", False), ("3001", True)])
def test_known_extension_ends_the_number_at_once(direction, digits, immediate):
    conv = start(direction)
    actions = press(conv, "#" + digits)
    if immediate:
        assert conv.effective_state is RESOLVING
        assert norm(actions)[-6] == CancelTimer("interdigit")
        assert ResolveTarget("t1", digits) in actions
    else:
        assert conv.effective_state is COLLECTING  # 3001 might follow
        fire(conv, "interdigit")
        assert conv.transfer.number == digits


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_no_digit_at_all_cancels_quietly(direction):
    conv = start(direction)
    press(conv, "#")
    actions = fire(conv, "interdigit")
    assert conv.state is TALKING
    entry = outcome(actions)
    assert (entry.kind, entry.cause, entry.number) == (OutcomeKind.CANCELLED, "no_number", None)
    assert actions == [entry, SetDialogTakeover(None)]  # no media was touched


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_back_key_while_dialling_cancels(direction):
    conv = start(direction)
    press(conv, "#20")
    actions = press(conv, "*")
    assert conv.state is TALKING
    assert norm(actions) == [CancelTimer("interdigit"), outcome(actions), SetDialogTakeover(None)]
    assert outcome(actions).cause == "transferor_returned"
    assert outcome(actions).number == "20"


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_symbols_are_not_part_of_a_number(direction):
    conv = start(direction)
    press(conv, "#1A2B3CD")  # A-D are not digits; # is the (inactive) transfer key
    fire(conv, "interdigit")
    assert conv.transfer.number == "123"


def test_an_over_long_number_is_refused_never_cut_short_and_dialled():
    conv = start(settings=make_settings(max_number_length=4))
    press(conv, "#123456")
    assert conv.effective_state is COLLECTING  # the extra digits are absorbed meanwhile
    actions = fire(conv, "interdigit")
    assert not [a for a in actions if isinstance(a, ResolveTarget)], actions
    assert PlayPrompt(A, "transfer_unknown_number") in actions
    (done,) = [a for a in actions if isinstance(a, RecordOutcome)]
    assert (done.kind, done.cause) == (OutcomeKind.REFUSED, "too_long")  # numbering.Refusal.TOO_LONG
    assert conv.state is TALKING


# -- whose digits count -------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_digits_from_the_client_are_ignored(direction):
    conv = start(direction)
    assert press(conv, "#201*#", leg=CLIENT) == []
    assert conv.state is TALKING
    assert conv.version == 7  # handled (and counted), just irrelevant


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_digits_that_are_not_talk_options_reach_the_client(direction):
    # rtpengine absorbs all of A's DTMF; what is no talk option is re-played towards the client
    conv = start(direction)
    assert press(conv, "0123456789*ABCD") == [PassDigit(A, d) for d in "0123456789*ABCD"]
    assert conv.state is TALKING


def test_a_tenant_may_absorb_every_digit(direction):
    conv = start(direction, settings=Settings(pass_other_digits=False, known_extensions=frozenset({"201"})))
    assert press(conv, "0123456789*ABCD") == []
    press(conv, "#201")
    assert conv.effective_state is RESOLVING


def test_digits_during_consultation_reach_b_but_not_while_b_rings(direction):
    conv = start(direction, settings=Settings(known_extensions=frozenset({"201"})))
    press(conv, "#201")
    leg = f"{conv.id}.t1.b1"
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    assert press(conv, "5") == []  # B rings: nobody to hear it
    conv.handle(LegAnswered(leg))
    assert press(conv, "5") == [PassDigit(A, "5")]


def test_the_talk_option_digits_themselves_are_never_passed(direction):
    conv = start(direction, settings=Settings(known_extensions=frozenset({"201"})))
    actions = press(conv, "#201")
    assert not [a for a in actions if isinstance(a, PassDigit)], actions
    assert press(conv, "*")  # back to the client
    assert conv.state is TALKING


def test_digit_from_unknown_leg_is_invalid():
    conv = start()
    with pytest.raises(InvalidTransition):
        conv.handle(DigitPressed("nobody", "#"))


@pytest.mark.parametrize(
    ("stream", "state"),
    [
        ("1#", COLLECTING),  # garbage before the key
        ("##", COLLECTING),  # the second key is ignored
        ("*#", COLLECTING),  # * is not active while talking
        ("#*", TALKING),  # started and cancelled
        ("#*#", COLLECTING),  # ... and started again
    ],
)
def test_garbled_streams(stream, state):
    conv = start()
    press(conv, stream)
    assert conv.effective_state is state


# -- configurable, multi-symbol keys ------------------------------------------------------


def test_multi_symbol_talk_options():
    options = TalkOptions(transfer="*2", back="##", conference="*3")
    conv = start(settings=Settings(talk_options=options, known_extensions=frozenset({"201"})))
    assert press(conv, "*") == []  # pending: could become "*2"
    assert press(conv, "5") == [PassDigit(A, "*"), PassDigit(A, "5")]  # "*5" is nobody's key: passed on
    assert conv.state is TALKING
    press(conv, "*2")
    assert conv.effective_state is COLLECTING
    press(conv, "#")  # pending: could become "##"
    press(conv, "2")  # "#2" is not a key: "#" released (not a digit), "2" collected
    press(conv, "01")
    assert conv.effective_state is RESOLVING
    assert conv.transfer.number == "201"
    press(conv, "##")
    assert conv.state is TALKING
