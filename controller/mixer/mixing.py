"""Mix-minus: each participant hears the sum of everybody else, never itself, saturated (no wrap-around).

Pure numpy on one 20 ms frame per participant: the frames are summed once in 32 bits, and each output is
that sum minus the participant's own frame, clipped to 16 bits. A participant without a frame this tick
(lost, late, not talking, just joined) adds nothing and still hears the others.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .g711 import FRAME_SAMPLES, Samples

__all__ = ["SILENCE", "mix_minus"]

SILENCE: Samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
SILENCE.setflags(write=False)


def mix_minus(frames: Mapping[str, Samples | None]) -> dict[str, Samples]:
    """For every participant (key), the others' frames summed and saturated; None is silence."""
    present = {who: frame.astype(np.int32) for who, frame in frames.items() if frame is not None}
    if not present:
        return {who: SILENCE for who in frames}
    total = np.sum(np.stack(list(present.values())), axis=0)
    out: dict[str, Samples] = {}
    for who in frames:
        own = present.get(who)
        others = total - own if own is not None else total
        out[who] = np.clip(others, -32768, 32767).astype(np.int16)
    return out
