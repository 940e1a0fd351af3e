"""G.711 (PCMU / PCMA) by lookup table: a whole 20 ms frame is decoded or encoded in one numpy indexing.

Decoding is a 256-entry table per law; encoding a 65,536-entry table indexed by the 16-bit sample (as
unsigned), built once, vectorised, from the ITU-T G.711 segment rules. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_SAMPLES", "Law", "decode", "encode"]

#: 20 ms at 8 kHz.
FRAME_SAMPLES = 160

Samples = npt.NDArray[np.int16]
Payload = npt.NDArray[np.uint8]


class Law(StrEnum):
    PCMU = "PCMU"  # mu-law, RTP payload type 0
    PCMA = "PCMA"  # A-law, RTP payload type 8


def _ulaw_decode_table() -> Samples:
    u = ~np.arange(256, dtype=np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    mantissa = (u & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> Samples:
    a = np.arange(256, dtype=np.uint8) ^ 0x55
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _segment(magnitude: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """The G.711 segment (0-7) of a biased magnitude: the position of its highest bit above bit 7."""
    bits = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    return np.clip(bits - 7, 0, 7)


def _ulaw_encode_table() -> Payload:
    # G.711 mu-law works on 14 bits: the sample's top 14 (an arithmetic shift), biased by 33
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(x < 0, -x, x), 8158) + 0x21  # 8191 at most: the top code
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _alaw_encode_table() -> Payload:
    x = np.arange(-32768, 32768, dtype=np.int32)
    mask = np.where(x >= 0, 0xD5, 0x55)
    magnitude = np.minimum(np.where(x >= 0, x, -x - 1), 32767)
    exponent = np.where(magnitude < 256, 0, _segment(magnitude))
    mantissa = np.where(exponent == 0, magnitude >> 4, (magnitude >> (exponent + 3))) & 0x0F
    return (((exponent << 4) | mantissa) ^ mask).astype(np.uint8)


_DECODE = {Law.PCMU: _ulaw_decode_table(), Law.PCMA: _alaw_decode_table()}
# indexed by sample + 32768 (the int16 seen as an offset into -32768..32767)
_ENCODE = {Law.PCMU: _ulaw_encode_table(), Law.PCMA: _alaw_encode_table()}


def decode(law: Law, payload: bytes) -> Samples:
    """G.711 bytes to 16-bit linear samples."""
    return _DECODE[law][np.frombuffer(payload, dtype=np.uint8)]


def encode(law: Law, samples: Samples) -> bytes:
    """16-bit linear samples to G.711 bytes."""
    return _ENCODE[law][samples.astype(np.int32) + 32768].tobytes()
