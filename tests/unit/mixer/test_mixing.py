"""Mix-minus: each participant hears exactly the others, saturated, never itself."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from controller.mixer.g711 import FRAME_SAMPLES
from controller.mixer.mixing import SILENCE, mix_minus


def const(value: int) -> np.ndarray:
    return np.full(FRAME_SAMPLES, value, dtype=np.int16)


def test_each_hears_the_sum_of_the_other_two() -> None:
    out = mix_minus({"client": const(100), "a": const(20), "b": const(3)})
    assert np.all(out["client"] == 23) and np.all(out["a"] == 103) and np.all(out["b"] == 120)


def test_loud_voices_saturate_instead_of_wrapping_around() -> None:
    out = mix_minus({"client": const(30000), "a": const(30000), "b": const(-30000)})
    assert np.all(out["b"] == 32767)  # 60000 clipped, not wrapped to a negative value
    assert np.all(out["client"] == 0) and np.all(out["a"] == 0)
    low = mix_minus({"x": const(-30000), "y": const(-30000), "z": const(0)})
    assert np.all(low["z"] == -32768)


def test_a_participant_without_a_frame_still_hears_the_others() -> None:
    out = mix_minus({"client": const(5), "a": None, "b": const(7)})
    assert np.all(out["a"] == 12) and np.all(out["client"] == 7) and np.all(out["b"] == 5)


def test_nobody_speaking_is_silence_for_everyone() -> None:
    out = mix_minus({"client": None, "a": None})
    assert all(frame is SILENCE for frame in out.values())


frames = arrays(np.int16, FRAME_SAMPLES)


@given(st.dictionaries(st.sampled_from(["client", "a", "b", "c", "d"]), st.none() | frames, min_size=1))
def test_nobody_ever_hears_itself(inputs: dict[str, np.ndarray | None]) -> None:
    out = mix_minus(inputs)
    assert set(out) == set(inputs)
    for who, frame in out.items():
        others = sum((f.astype(np.int64) for w, f in inputs.items() if w != who and f is not None),
                     np.zeros(FRAME_SAMPLES, dtype=np.int64))
        assert np.array_equal(frame, np.clip(others, -32768, 32767).astype(np.int16))
        assert frame.dtype == np.int16
