"""SIP final-response classification used by the transfer fallback."""

from __future__ import annotations

from collections.abc import Iterable

from .types import FailureCause

__all__ = ["aggregate_cause", "failure_cause", "is_global_failure"]

_BUSY = frozenset({486, 600})  # Busy Here, Busy Everywhere
_REJECTED = frozenset({603, 607})  # Decline, Unwanted (RFC 8197)
# Everything else (408 Request Timeout, 480 Temporarily Unavailable, 404, 503,
# 0 = no response at all / no registration...) means the target was unreachable.

_PRIORITY = (FailureCause.REJECTED, FailureCause.BUSY, FailureCause.UNREACHABLE)


def failure_cause(sip_status: int) -> FailureCause:
    """Map a final failure response (or 0 for "no SIP response") to a cause."""
    if sip_status in _BUSY:
        return FailureCause.BUSY
    if sip_status in _REJECTED:
        return FailureCause.REJECTED
    return FailureCause.UNREACHABLE


def is_global_failure(sip_status: int) -> bool:
    """6xx: "definitive information about a particular user" (RFC 3261 §21.6).

    RFC 3261 §16.7 has a forking proxy react to a 6xx on one branch: it "SHOULD
    cancel all client pending transactions".  The machine does the same for the
    contacts of one callee, but not across the members of a department, who are
    different users.
    """
    return 600 <= sip_status <= 699


def aggregate_cause(causes: Iterable[FailureCause]) -> FailureCause:
    """The cause reported when every parallel branch failed (most specific wins)."""
    seen = set(causes)
    for cause in _PRIORITY:
        if cause in seen:
            return cause
    return FailureCause.UNREACHABLE
