from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.proxy.budget import PerSourceBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_source_gets_its_allowance_per_window() -> None:
    clock = Clock()
    budget = PerSourceBudget(limit=3, window_s=10, clock=clock)
    assert [budget.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert budget.allow("b") is True  # another source has its own
    clock.now += 10
    assert budget.allow("a") is True


def test_memory_is_bounded_whatever_the_sources() -> None:
    budget = PerSourceBudget(limit=1, window_s=60, max_sources=100, clock=Clock())
    for i in range(10_000):
        budget.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(budget) <= 100


@pytest.mark.parametrize("kw", [{"limit": 0}, {"window_s": 0}, {"max_sources": 0}])
def test_bad_settings(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PerSourceBudget(**kw)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 3)), max_size=60))
def test_matches_a_fixed_window_model(steps: list[tuple[str, float]]) -> None:
    """Each source's window starts at its first event and lasts window_s; at most `limit` per window."""
    clock = Clock()
    budget = PerSourceBudget(limit=2, window_s=5, clock=clock)
    model: dict[str, tuple[float, int]] = {}
    for source, dt in steps:
        clock.now += dt
        start, used = model.get(source, (clock.now, 0))
        if clock.now - start >= 5:
            start, used = clock.now, 0
        model[source] = (start, used + 1)
        assert budget.allow(source) == (used < 2)
