"""Distinct tones for telling voices apart once they are mixed (the conference's acceptance): each party
sends a sine of its own, and what a party receives is analysed for every party's frequency (Goertzel)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["RATE", "levels", "tone"]

RATE = 8000


def tone(frequency: float, samples: int, *, start: int = 0, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    """`samples` of a sine, continuing from sample `start` (so consecutive frames join without a click)."""
    n = np.arange(start, start + samples)
    return np.round(amplitude * np.sin(2 * np.pi * frequency * n / RATE)).astype(np.int16)


def levels(samples: npt.NDArray[np.int16], frequencies: list[float]) -> dict[float, float]:
    """Each frequency's amplitude in `samples` (Goertzel), in the samples' own units: a tone of amplitude
    A reads about A, another frequency (or silence) near 0."""
    x = samples.astype(np.float64)
    n = np.arange(len(x))
    out = {}
    for frequency in frequencies:
        phase = 2 * np.pi * frequency * n / RATE
        out[frequency] = float(2 * abs(np.dot(x, np.cos(phase)) - 1j * np.dot(x, np.sin(phase))) / max(len(x), 1))
    return out
