"""Thin I/O adapters to the outside world: rtpengine ng, Kamailio JSON-RPC, DTMF events."""
