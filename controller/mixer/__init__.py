"""The project's own three-way mixer (rtpengine 10.5 cannot mix: platform-notes.md).

Pure parts only so far, each unit-tested without I/O: G.711 by lookup table (g711.py), mix-minus with
saturation (mixing.py), an adaptive jitter buffer per input (jitter.py), RTP parsing and continuous
output streams (rtp.py), and one conference's mixing from datagrams in to packets out (conference.py).
"""
