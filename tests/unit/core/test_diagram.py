"""The transition table and the diagrams generated from it (assertions that can fail)."""

from __future__ import annotations

import pytest

from controller.core import (
    CONVERSATION_TRANSITIONS,
    TRANSFER_TRANSITIONS,
    TRANSITIONS,
    ConversationState,
    Stimulus,
    TransferState,
    to_dot,
    to_mermaid,
)
from controller.core.diagram import all_states, diagram_edges, reachable_states
from controller.core.states import edges

C, T, S = ConversationState, TransferState, Stimulus


def without(source, stimulus):
    """The table with one cell removed."""
    return {state: {s: t for s, t in row.items() if (state, s) != (source, stimulus)}
            for state, row in TRANSITIONS.items()}


def test_every_state_is_reachable_in_the_diagram():
    assert reachable_states(C.NEW) == set(all_states())


def test_every_state_can_reach_the_end():
    for state in all_states():
        assert C.ENDED in reachable_states(state), state


def test_reachability_follows_the_table():
    # the only ways into the voicemail greeting are the fallback's decision cells
    table = {state: {s: t for s, t in row.items() if s is not S.VOICEMAIL} for state, row in TRANSITIONS.items()}
    assert T.VOICEMAIL_GREETING not in reachable_states(C.NEW, table)
    assert T.VOICEMAIL_RECORDING not in reachable_states(C.NEW, table)


def test_every_state_has_a_row_and_every_target_is_a_state():
    nodes = set(all_states())
    assert set(TRANSFER_TRANSITIONS) == set(TransferState)
    assert set(CONVERSATION_TRANSITIONS) == nodes - set(TransferState)
    for _, _, target in edges():
        assert target in nodes


def test_the_client_can_always_hang_up_and_media_can_always_fail():
    for state in all_states():
        if state in (C.NEW, C.ENDED):
            continue
        row = TRANSITIONS[state]
        assert row[S.CLIENT_HUNG_UP] is C.ENDED, state
        assert S.MEDIA_FAILED in row, state
        if state is not C.TALKING:
            assert row[S.TRANSFER_REQUESTED] is state, state  # refused, nothing changes


# One target per (state, stimulus): the table is a mapping, so these are its cells.
KNOWN_EDGES = [
    ("NEW", "TALKING", "started"),
    ("TALKING", "T_COLLECTING", "transfer_key"),
    ("T_COLLECTING", "T_RESOLVING", "number_known"),
    ("T_RESOLVING", "T_RINGING", "target_resolved"),
    ("T_RESOLVING", "T_BLIND_RINGING", "resolved_blind"),
    ("T_RINGING", "T_CONSULTING", "target_answered"),
    ("T_RINGING", "T_BLIND_RINGING", "transferor_hung_up"),
    ("T_RINGING", "T_RECONNECTING", "warn"),
    ("T_CONSULTING", "BRIDGED", "transferor_hung_up_outside"),
    ("T_BLIND_RINGING", "T_RINGING_TRANSFEROR", "recall"),
    ("T_BLIND_RINGING", "T_VOICEMAIL_GREETING", "voicemail"),
    ("T_RINGING_TRANSFEROR", "T_ROUTING_TO_ORIGIN", "route_to_origin"),
    ("T_RINGING_ORIGIN", "T_APOLOGIZING", "apologize"),
    ("T_VOICEMAIL_GREETING", "T_VOICEMAIL_RECORDING", "prompts_done"),
    ("T_APOLOGIZING", "ENDED", "prompts_done"),
]


@pytest.mark.parametrize(("source", "target", "stimulus"), KNOWN_EDGES)
def test_known_edges_are_drawn(source, target, stimulus):
    dot_edges = [line.strip() for line in to_dot().splitlines() if " -> " in line]
    (dot,) = [e for e in dot_edges if e.startswith(f"{source} -> {target} ")]
    assert stimulus in dot.split('label="')[1].rstrip('"];').split("\\n")
    (mermaid,) = [e for e in to_mermaid().splitlines() if e.strip().startswith(f"{source} --> {target}:")]
    assert stimulus in mermaid.split(": ", 1)[1].split(", ")


def test_an_edge_removed_from_the_table_disappears_from_the_diagram():
    table = without(T.BLIND_RINGING, S.RECALL)
    assert "T_BLIND_RINGING -> T_RINGING_TRANSFEROR" in to_dot()
    assert "T_BLIND_RINGING -> T_RINGING_TRANSFEROR" not in to_dot(table=table)
    assert "T_BLIND_RINGING --> T_RINGING_TRANSFEROR" not in to_mermaid(table=table)
    # one label of a merged edge goes, the edge stays for the others
    table = without(T.COLLECTING, S.BACK_KEY)
    (edge,) = [e for e in to_mermaid(table=table).splitlines() if "T_COLLECTING --> TALKING:" in e]
    assert "back_key" not in edge and "no_number" in edge


def test_dot_and_mermaid_show_every_state_and_edge_exactly():
    dot, mermaid = to_dot(), to_mermaid()
    assert dot.startswith("digraph conversation {") and dot.rstrip().endswith("}")
    assert "subgraph cluster_transferring" in dot
    assert mermaid.startswith("stateDiagram-v2")
    for state in all_states():
        assert state.name in dot and state.name in mermaid
    drawn = [line for line in mermaid.splitlines() if " --> " in line and "[*]" not in line]
    assert len(drawn) == len(diagram_edges())
    cells = sum(1 for source, _, target in edges() if source is not target)
    assert sum(len(stimuli) for stimuli in diagram_edges().values()) == cells


def test_self_loops_are_optional():
    assert len(diagram_edges(self_loops=True)) > len(diagram_edges())
    assert "T_RINGING -> T_RINGING" in to_dot(self_loops=True)
    assert "T_RINGING -> T_RINGING" not in to_dot()
