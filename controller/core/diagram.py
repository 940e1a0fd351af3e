"""State diagrams generated from the transition table, so documentation cannot drift.

``to_dot()`` renders Graphviz DOT (transfer states in a ``TRANSFERRING``
cluster), ``to_mermaid()`` a Mermaid ``stateDiagram-v2``.  Every cell of
:data:`~controller.core.states.TRANSITIONS` is one edge (a guard's refinements
and a handler's follow-ups are cells too, e.g. ``BLIND_RINGING --recall-->
RINGING_TRANSFEROR``).  Parallel edges between the same two states are merged
into one edge with several labels.  Self-loops (refused requests, ignored but
accepted events, the cells whose handler hands on a follow-up) are left out
unless ``self_loops=True``.  Every function takes the ``table`` to draw
(default: the machine's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .states import TRANSITIONS, ConversationState, State, Stimulus, TransferState

Table = Mapping[State, Mapping[Stimulus, State]]

__all__ = ["all_states", "diagram_edges", "reachable_states", "to_dot", "to_mermaid"]


def _node(state: State) -> str:
    return state.name if isinstance(state, ConversationState) else f"T_{state.name}"


def all_states() -> list[State]:
    """Every node of the diagram (``TRANSFERRING`` is the cluster, not a node)."""
    nodes: list[State] = [s for s in ConversationState if s is not ConversationState.TRANSFERRING]
    nodes.extend(TransferState)
    return nodes


def diagram_edges(*, self_loops: bool = False, table: Table = TRANSITIONS) -> dict[tuple[State, State], list[Stimulus]]:
    """(source, target) -> stimuli, in table order."""
    merged: dict[tuple[State, State], list[Stimulus]] = {}
    for source, row in table.items():
        for stimulus, target in row.items():
            if source is target and not self_loops:
                continue
            merged.setdefault((source, target), []).append(stimulus)
    return merged


def reachable_states(start: State = ConversationState.NEW, table: Table = TRANSITIONS) -> set[State]:
    """States reachable from ``start`` following the table."""
    seen = {start}
    todo = [start]
    graph = diagram_edges(self_loops=False, table=table)
    while todo:
        current = todo.pop()
        for source, target in graph:
            if source is current and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _label(stimuli: Iterable[Stimulus]) -> str:
    return "\\n".join(s.value for s in stimuli)


def to_dot(*, self_loops: bool = False, table: Table = TRANSITIONS) -> str:
    lines = [
        "digraph conversation {",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  start [shape=point];',
        f"  start -> {_node(ConversationState.NEW)};",
    ]
    for state in ConversationState:
        if state is not ConversationState.TRANSFERRING:
            shape = ", peripheries=2" if state is ConversationState.ENDED else ""
            lines.append(f'  {_node(state)} [label="{state.name}"{shape}];')
    lines.append("  subgraph cluster_transferring {")
    lines.append('    label="TRANSFERRING";')
    for state in TransferState:
        lines.append(f'    {_node(state)} [label="{state.name}"];')
    lines.append("  }")
    for (source, target), stimuli in diagram_edges(self_loops=self_loops, table=table).items():
        lines.append(f'  {_node(source)} -> {_node(target)} [label="{_label(stimuli)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(*, self_loops: bool = False, table: Table = TRANSITIONS) -> str:
    lines = ["stateDiagram-v2", f"  [*] --> {_node(ConversationState.NEW)}"]
    for state in all_states():
        title = state.name if isinstance(state, ConversationState) else f"TRANSFERRING: {state.name}"
        lines.append(f"  state \"{title}\" as {_node(state)}")
    for (source, target), stimuli in diagram_edges(self_loops=self_loops, table=table).items():
        label = ", ".join(s.value for s in stimuli)
        lines.append(f"  {_node(source)} --> {_node(target)}: {label}")
    lines.append(f"  {_node(ConversationState.ENDED)} --> [*]")
    return "\n".join(lines) + "\n"
