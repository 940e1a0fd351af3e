"""Which number B sees when the controller rings it."""

from __future__ import annotations

from .types import CallerIdPolicy, TargetKind

__all__ = ["caller_id_for_target"]

#: Destinations that stay inside the operator's own network, where the client's
#: number may be shown.  The law forbids presenting the client's number to an
#: outside number reached over the trunk.
_INTERNAL_KINDS = frozenset({TargetKind.EXTENSION, TargetKind.DEPARTMENT, TargetKind.SIP_URI})


def caller_id_for_target(
    policy: CallerIdPolicy | str,
    target_kind: TargetKind | str,
    client_number: str | None,
    did: str | None,
    company_number: str,
) -> str:
    """Return the caller ID to present to a transfer target.

    ======== ==================================== =========================
    policy   extension / department / sip_uri     trunk
    ======== ==================================== =========================
    did      DID, else company                    DID, else company
    client   client, else DID, else company       DID, else company (law)
    company  company                              company
    ======== ==================================== =========================

    An anonymous client (``client_number`` empty or None) is treated like an
    unknown number: the DID (or the company number) is shown instead.
    """
    policy = CallerIdPolicy(policy)
    kind = TargetKind(target_kind)
    company_fallback = did or company_number
    if policy is CallerIdPolicy.COMPANY:
        return company_number
    if policy is CallerIdPolicy.DID:
        return company_fallback
    if kind not in _INTERNAL_KINDS:
        return company_fallback
    return client_number or company_fallback
