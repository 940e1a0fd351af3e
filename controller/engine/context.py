"""What the I/O side knows about a conversation beside the machine's snapshot (saved with it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.states import State, TransferState

__all__ = ["ConversationIO", "time_steps"]


@dataclass
class ConversationIO:
    conversation_id: str
    tenant_id: str
    direction: str
    ng_call_id: str  # the client dialog's SIP Call-ID, also its rtpengine call-id
    client_tag: str
    transferor_tag: str
    client_from_tag: str  # the client dialog's From/To tags, for one-sided BYEs
    client_to_tag: str
    started_ms: int = 0
    # the trunk the client is on ("" for a SIP URI): a trunk marked `refer: true` may call B itself
    client_trunk: str = ""
    legs: dict[str, dict[str, str]] = field(default_factory=dict)  # leg id -> call_id, from_tag, to_tag
    transfer_started_ms: dict[str, int] = field(default_factory=dict)
    # a transfer touched this call (Kamailio flags, extra rtpengine tags): its end needs a clean-up
    touched: bool = False
    # how long the running transfer has spent in each of its states (resolving, ringing, ...), for its outcome
    steps_ms: dict[str, int] = field(default_factory=dict)
    step_since_ms: int = 0
    # why the engine refused a transfer's number (transfer id -> "denied_prefix", "limit"...): the
    # machine only knows unknown/forbidden, the transfer's event names the rule
    refusals: dict[str, str] = field(default_factory=dict)
    # the outside-transfer slots (limits.py) this conversation holds, released when each is over
    outside_slots: list[str] = field(default_factory=list)
    # tags rtpengine injects DTMF towards (offered or re-paired with `inject DTMF`): an ordinary call is
    # offered without it, and the first digit passed on to a party enables it (MediaExecutor.enable_injection)
    injecting: list[str] = field(default_factory=list)

    def side_of(self, tag: str) -> str:
        return "caller" if tag == self.client_from_tag else "callee"

    def leg_for_call(self, call_id: str) -> str | None:
        return next((leg for leg, info in self.legs.items() if info.get("call_id") == call_id), None)


def time_steps(io: ConversationIO, before: State, after: State, now_ms: int) -> None:
    """Add the time spent in `before` to the transfer's step times when the machine leaves it."""
    if before is after:
        return
    if isinstance(before, TransferState):
        io.steps_ms[before.value] = io.steps_ms.get(before.value, 0) + now_ms - io.step_since_ms
    io.step_since_ms = now_ms
