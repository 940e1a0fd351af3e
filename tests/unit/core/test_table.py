"""The table: one target per (state, stimulus), a handler per cell, declared guards and follow-ups."""

from __future__ import annotations

import pytest

from controller.core import (
    ActionFailed,
    ConversationState,
    LegFailed,
    LegHungUp,
    LegState,
    Stimulus,
    TransferState,
)
from controller.core import handlers as handler_module
from controller.core.errors import TransitionTableError
from controller.core.handlers import GUARD_FUNCTIONS, HANDLERS
from controller.core.states import DECISIONS, FOLLOW_UPS, GUARDS, TRANSITIONS, accepts, edges

from ._helpers import CLIENT, A, leg_b, start, to_ringing
from .test_every_state import STATES, reach

C, T, S = ConversationState, TransferState, Stimulus


def test_every_cell_has_a_handler_and_every_handler_a_cell():
    cells = {(source, stimulus) for source, stimulus, _ in edges()}
    assert set(HANDLERS) == cells
    assert all(callable(handler) for handler in HANDLERS.values())


def test_one_target_per_cell():
    for row in TRANSITIONS.values():
        for target in row.values():
            assert isinstance(target, ConversationState | TransferState)


def test_every_guard_has_a_function_and_its_refinements_have_cells():
    assert set(GUARD_FUNCTIONS) == set(GUARDS)
    for (state, _), refinements in GUARDS.items():
        for refined in refinements:
            assert refined in TRANSITIONS[state], (state, refined)


def test_follow_ups_are_looked_up_in_the_row_the_cell_leads_to():
    for (state, stimulus), follow_ups in FOLLOW_UPS.items():
        target = TRANSITIONS[state][stimulus]
        for follow_up in follow_ups:
            assert follow_up in TRANSITIONS[target], (state, stimulus, follow_up)


def test_decisions_lead_where_the_fallback_says():
    for state, row in TRANSITIONS.items():
        for stimulus, target in row.items():
            if stimulus in DECISIONS:
                assert target is DECISIONS[stimulus], (state, stimulus)


def test_every_timer_a_state_starts_can_fire_there():
    # a guarded stimulus is accepted even without a cell of its own
    assert accepts(T.COLLECTING, S.DIGIT_TIMEOUT) and S.DIGIT_TIMEOUT not in TRANSITIONS[T.COLLECTING]
    assert not accepts(C.TALKING, S.DIGIT_TIMEOUT)


def _check_steps(conv):
    """Every step of the last handle() was a cell, they chain, and the conversation is where the last one led."""
    steps = conv.last_steps
    for (state, stimulus, target), following in zip(steps, [*steps[1:], None][: len(steps)], strict=True):
        assert TRANSITIONS[state][stimulus] is target
        if following is not None:
            assert following[0] is target
            assert following[1] in FOLLOW_UPS[state, stimulus]
    if steps:
        assert conv.effective_state is steps[-1][2]


@pytest.mark.parametrize("state", list(STATES), ids=lambda s: s.name)
def test_handlers_never_choose_a_target_the_table_does_not_name(direction, state):
    for event in [LegHungUp(A), ActionFailed("PlayPrompt"), LegHungUp(CLIENT)]:
        conv = reach(direction, state)
        if isinstance(event, LegHungUp) and conv.legs[event.leg].state is not LegState.UP:
            continue  # A has left already
        conv.handle(event)
        _check_steps(conv)


def test_a_follow_up_is_one_more_cell(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegFailed(leg_b(1), 486))
    assert conv.last_steps == [(T.RINGING, S.TARGET_FAILED, T.RINGING), (T.RINGING, S.RECONNECT, C.TALKING)]


def test_an_undeclared_follow_up_is_a_bug(direction, monkeypatch):
    conv = start(direction)
    to_ringing(conv)
    table = dict(HANDLERS)
    table[T.RINGING, S.TARGET_FAILED] = lambda step: S.VOICEMAIL
    monkeypatch.setattr("controller.core.conversation.HANDLERS", table)
    before = conv.to_dict()
    with pytest.raises(TransitionTableError, match="returned VOICEMAIL"):
        conv.handle(LegFailed(leg_b(1), 486))
    assert conv.to_dict() == before


def test_an_undeclared_refinement_is_a_bug(direction, monkeypatch):
    conv = start(direction)
    guards = dict(GUARD_FUNCTIONS)
    guards[C.TALKING, S.MEDIA_FAILED] = lambda step: S.TRANSFER_KEY
    monkeypatch.setattr("controller.core.conversation.GUARD_FUNCTIONS", guards)
    with pytest.raises(TransitionTableError, match="gave TRANSFER_KEY"):
        conv.handle(ActionFailed("BridgeMedia"))


def test_handlers_live_in_their_modules():
    modules = {HANDLERS[T.RINGING, S.TARGET_FAILED].__module__, HANDLERS[T.APOLOGIZING, S.PROMPTS_DONE].__module__,
               HANDLERS[C.TALKING, S.TRANSFER_KEY].__module__}
    assert modules == {"controller.core.transfer", "controller.core.fallback", handler_module.__name__}
