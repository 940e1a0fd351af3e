"""docs/ARCHITECTURE.md shows the state diagram generated from the transition tables, so it cannot drift."""

from controller.cli import ARCHITECTURE, diagram_block


def test_the_documented_state_diagram_is_the_generated_one() -> None:
    assert diagram_block() in ARCHITECTURE.read_text(), "run `xferctl diagram --write` after changing the tables"
