"""The small interfaces the engine talks through (typing.Protocol ports).

The engine knows nothing about Redis, Kamailio's JSON-RPC or rtpengine's ng protocol: it needs a place
for conversation records, SIP dialogs it can start and end, media it can move, deadlines and a clock.
The adapters in controller.adapters implement these; the component tests use small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from controller.core import Action

__all__ = ["Clock", "Limits", "MediaPort", "PromptStarted", "Records", "SipPort", "Timers", "VoicemailPort"]


class PromptStarted(Protocol):
    """What the media port says when a prompt starts: the engine reports PromptFinished after `seconds`."""

    leg: str
    prompt: Any
    seconds: float


class Records(Protocol):
    """Conversation records and the event log (controller.adapters.redis_store.ConversationStore)."""

    async def get_conversation(self, conversation_id: str) -> dict[str, str]: ...
    async def get_snapshot(self, conversation_id: str) -> tuple[str | None, str | None]: ...
    async def save_snapshot(self, conversation_id: str, machine: str | None, io: str | None) -> None: ...
    async def update_conversation(self, conversation_id: str, fields: dict[str, Any], *,
                                  event: str | None = None, event_fields: dict[str, Any] | None = None) -> None: ...
    async def append_event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None: ...
    async def end_legs(self, legs: dict[str, str]) -> None: ...


class MediaPort(Protocol):
    """The conversation's rtpengine call (controller.adapters.rtpengine_media.MediaExecutor)."""

    async def execute(self, call_id: str, action: Action) -> PromptStarted | None: ...
    async def enable_injection(self, call_id: str, leg: str, partner: str) -> None: ...
    async def endpoint_sdp(self, call_id: str, tag: str) -> str: ...
    async def delete_call(self, call_id: str) -> None: ...


class SipPort(Protocol):
    """SIP dialogs through Kamailio (controller.adapters.kamailio_sip.SipExecutor)."""

    async def originate(self, *, conversation_id: str, leg_id: str, targets: list[dict[str, Any]],
                        target_user: str, domain: str, caller_id: str, sdp: str, ng_flags: str,
                        ring_timeout_s: float) -> str: ...
    async def cancel(self, call_id: str) -> None: ...
    async def bye(self, call_id: str, from_tag: str, to_tag: str, side: str) -> None: ...
    async def set_transferor(self, call_id: str, tag: str | None) -> None: ...
    async def mark_feature(self, call_id: str) -> None: ...
    async def forget_call(self, call_id: str, leg_call_ids: list[str]) -> None: ...
    async def notify_referrer(self, call_id: str, from_tag: str, to_tag: str, side: str, code: int, reason: str,
                              final: bool) -> None: ...


class Timers(Protocol):
    """Deadlines that outlive this process (controller.adapters.redis_timers.TimerStore)."""

    async def start(self, conversation: str, name: str, seconds: float) -> None: ...
    async def cancel(self, conversation: str, name: str) -> None: ...
    async def cancel_all(self, conversation: str, names: list[str]) -> None: ...


class Limits(Protocol):
    """Per-tenant outside-transfer limits (controller.adapters.redis_limits.OutsideTransferLimits)."""

    async def acquire(self, tenant: str, slot: str, plan: Any) -> str | None: ...
    async def release(self, tenant: str, *slots: str) -> None: ...


class VoicemailPort(Protocol):
    """Recording the client (controller.adapters.voicemail.VoicemailBox)."""

    async def start(self, *, call_id: str, leg: str, message: Any) -> None: ...
    async def stop(self, conversation: str, leg: str) -> Any: ...
    async def save(self, message: Any) -> None: ...


#: Wall-clock milliseconds (event-log timestamps, step times); injected so tests need not patch globals.
Clock = Callable[[], int]
