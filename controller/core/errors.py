"""Exceptions raised by the pure call/transfer logic."""

from __future__ import annotations

__all__ = ["InvalidTransition", "TransitionTableError"]


class InvalidTransition(Exception):
    """An event that cannot happen in the current state (h11's ``LocalProtocolError``).

    Raised for protocol impossibilities only: an event before
    ``ConversationStarted``, a second ``ConversationStarted``, an event naming a
    leg the conversation never had, a provisional/final response on an
    established dialog, a BYE on an early dialog, a resolution answer to a
    request that was never sent.  Expected-but-irrelevant events (a digit from
    the client, a stale timer, a late answer to a cancelled request) never raise.

    The conversation is left exactly as it was before the event (including its
    ``version``), so the service may log the error and carry on.
    """

    def __init__(self, event: object, state: str, conversation_id: str, detail: str = "") -> None:
        self.event = event
        self.state = state
        self.conversation_id = conversation_id
        self.detail = detail
        message = f"conversation {conversation_id!r}: can't handle event {event!r} in state {state}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class TransitionTableError(RuntimeError):
    """A handler produced a state the transition table does not allow: a bug in core."""
