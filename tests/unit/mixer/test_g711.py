"""G.711 by lookup table, against CPython's own implementation (audioop, Python 3.11) as the oracle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from controller.mixer.g711 import FRAME_SAMPLES, Law, decode, encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # deprecated (removed in 3.13), present on Debian 12's 3.11: a test oracle only

ORACLE = {Law.PCMU: (audioop.ulaw2lin, audioop.lin2ulaw), Law.PCMA: (audioop.alaw2lin, audioop.lin2alaw)}
EVERY_BYTE = bytes(range(256))
EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)


@pytest.mark.parametrize("law", list(Law))
def test_every_byte_decodes_as_the_reference_does(law: Law) -> None:
    expected = np.frombuffer(ORACLE[law][0](EVERY_BYTE, 2), dtype=np.int16)
    assert np.array_equal(decode(law, EVERY_BYTE), expected)


@pytest.mark.parametrize("law", list(Law))
def test_every_sample_encodes_as_the_reference_does(law: Law) -> None:
    assert encode(law, EVERY_SAMPLE) == ORACLE[law][1](EVERY_SAMPLE.tobytes(), 2)


@pytest.mark.parametrize("law", list(Law))
def test_a_decoded_value_encodes_back_to_itself(law: Law) -> None:
    once = decode(law, EVERY_BYTE)
    assert np.array_equal(decode(law, encode(law, once)), once)


@pytest.mark.parametrize("law", list(Law))
def test_a_frame_round_trips_within_the_laws_quantisation(law: Law) -> None:
    frame = (np.sin(np.arange(FRAME_SAMPLES) / 5) * 20000).astype(np.int16)
    back = decode(law, encode(law, frame)).astype(np.int32)
    error = np.abs(back - frame.astype(np.int32))
    # a logarithmic law: the error stays within about 1/16 of the magnitude (plus the smallest step)
    assert np.all(error <= np.abs(frame.astype(np.int32)) / 16 + 16)
    assert len(encode(law, frame)) == FRAME_SAMPLES
