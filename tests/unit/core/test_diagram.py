"""The transition tables and the diagrams generated from them."""

from __future__ import annotations

from controller.core import (
    CONVERSATION_TRANSITIONS,
    TRANSFER_TRANSITIONS,
    ConversationState,
    Stimulus,
    TransferState,
    to_dot,
    to_mermaid,
)
from controller.core.diagram import all_states, diagram_edges, reachable_states
from controller.core.states import edges

C = ConversationState


def test_every_state_is_reachable_in_the_diagram():
    assert reachable_states(C.NEW) == set(all_states())


def test_every_state_can_reach_the_end():
    for state in all_states():
        assert C.ENDED in reachable_states(state), state


def test_every_state_has_a_row_and_every_target_is_a_state():
    nodes = set(all_states())
    assert set(TRANSFER_TRANSITIONS) == set(TransferState)
    assert set(CONVERSATION_TRANSITIONS) == nodes - set(TransferState)
    for _, _, target in edges():
        assert target in nodes


def test_the_client_can_always_hang_up_and_media_can_always_fail():
    for state in all_states():
        row = CONVERSATION_TRANSITIONS.get(state) or TRANSFER_TRANSITIONS.get(state)
        if state in (C.NEW, C.ENDED):
            continue
        assert Stimulus.CLIENT_HUNG_UP in row, state
        assert Stimulus.MEDIA_FAILED in row, state
        assert Stimulus.TRANSFER_REQUESTED in row, state


def test_dot_and_mermaid_show_every_state_and_edge():
    dot, mermaid = to_dot(), to_mermaid()
    assert dot.startswith("digraph conversation {") and dot.rstrip().endswith("}")
    assert "subgraph cluster_transferring" in dot
    assert mermaid.startswith("stateDiagram-v2")
    for state in all_states():
        assert state.name in dot and state.name in mermaid
    for (source, target), stimuli in diagram_edges().items():
        for stimulus in stimuli:
            assert stimulus.value in dot and stimulus.value in mermaid
        assert source is not target


def test_self_loops_are_optional():
    assert len(diagram_edges(self_loops=True)) > len(diagram_edges())
    assert "T_RINGING -> T_RINGING" in to_dot(self_loops=True)
    assert "T_RINGING -> T_RINGING" not in to_dot()
