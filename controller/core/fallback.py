"""What happens after B failed: pure decisions, and the handlers of the states they lead to.

B fails by no answer (the machine's own timer), busy (486/600), rejection
(603/607) or unreachability (408/480/503/anything else, 0 for no
registration or a failed origination).

The *decisions* are pure functions of the conversation's facts; each returns
one of the decision stimuli (``RECONNECT``, ``WARN``, ``RECALL``,
``ROUTE_TO_ORIGIN``, ``APOLOGIZE``, ``VOICEMAIL``), which the handler that
noticed the failure returns as its follow-up, so that the table names where
each decision leads (:data:`~controller.core.states.DECISIONS`):

* A still on the line: A is reconnected (``RECONNECT``), after the optional
  warning prompts (``WARN`` -> RECONNECTING), and stays in control;
* A has left: the direction's rule.  ``return_to_transferor`` rings A again
  (``RECALL``) while the client keeps the hold music, ``apologize`` plays the
  apology and ends the call, ``voicemail`` plays greeting and beep and
  records the client;
* A does not answer the recall either (or cannot be rung): with
  ``return_to_origin`` the routing step that first delivered the call is
  looked up again (``ROUTE_TO_ORIGIN``) and its members ring for the client, A
  excluded; the first to answer gets the client and becomes the transferor,
  and the outcome is ``failed`` with mode ``origin``.  If nobody there answers
  either, or the origin has nobody to ring, the client hears the apology: the
  call is never silently dropped and never loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import branches
from .actions import ResolveOrigin, RingTransferor
from .events import LegAnswered, LegFailed, PromptFinished, TargetResolved
from .legs import Leg
from .media import Overlay
from .outcome import finish
from .prompts import PromptRef
from .sip import failure_cause
from .states import Stimulus
from .types import EndReason, FallbackRule, LegRole, LegState, OutcomeKind, OutcomeMode, TimerPurpose

if TYPE_CHECKING:
    from .context import Facts, Step

__all__ = ["after_recall_failed", "after_transferor_left", "on_line"]

_S = Stimulus
_TP = TimerPurpose


# -- decisions ------------------------------------------------------------------------------


def on_line(facts: Facts) -> Stimulus:
    """A is there to take the client back: with the warnings first, if there are any."""
    policy = facts.policy
    return _S.WARN if policy.warn_transferor_prompt or policy.warn_client_prompt else _S.RECONNECT


def after_transferor_left(facts: Facts) -> Stimulus:
    """The direction's rule, once A has left."""
    rule = facts.policy.rule
    if rule is FallbackRule.RETURN_TO_TRANSFEROR:
        return _S.RECALL if facts.transferor_number else after_recall_failed(facts)
    return _S.APOLOGIZE if rule is FallbackRule.APOLOGIZE else _S.VOICEMAIL


def after_recall_failed(facts: Facts) -> Stimulus:
    """A cannot take the client back: the routing step the call came from, if configured, else the apology."""
    return _S.ROUTE_TO_ORIGIN if facts.policy.return_to_origin and facts.origin else _S.APOLOGIZE


def guard_prompt(s: Step) -> Stimulus:
    """A prompt we waited for finished: others still playing, another one queued, or all done."""
    if s.t.awaiting:
        return _S.PROMPT_FINISHED
    return _S.PROMPT_NEXT if s.t.queue else _S.PROMPTS_DONE


# -- the decisions' handlers ------------------------------------------------------------------


def reconnect(s: Step) -> None:
    t = s.t
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    finish(s, OutcomeKind.RETURNED, cause=t.cause, rule=t.rule, mode=t.return_mode)


def warn(s: Step) -> None:
    """Nobody waits in silence while the warnings play: A is paired with the client again (each still
    blocked towards the other, so both hear their warning and nothing else) and the prompts play on top."""
    policy, media = s.facts.policy, s.fx.media
    a, client = s.facts.a, s.facts.client_leg
    media.stop(a)
    if media.partner_of(a) != client or media.partner_of(client) != a:
        media.bridge(client, a, muted=(client, a))
    media.block(a, client)
    media.block(client, a)
    if policy.warn_transferor_prompt:
        _play_awaited(s, a, policy.warn_transferor_prompt)
    if policy.warn_client_prompt:
        media.stop(client)  # the hold music
        _play_awaited(s, client, policy.warn_client_prompt)
    s.fx.start_timer(_TP.PROMPT, s.facts.settings.prompt_guard_s)


def recall(s: Step) -> None:
    """Ring A again; the client keeps the hold music."""
    facts, t = s.facts, s.t
    number = facts.transferor_number
    assert number
    timeout = facts.policy.transferor_ring_timeout_s
    leg_id = f"{facts.id}.{t.id}.r1"
    s.fx.add_leg(Leg(leg_id, LegRole.RECALL, LegState.TRYING, number, facts.transferor_kind))
    t.recall_leg = leg_id
    s.fx.emit(RingTransferor(leg_id, number, facts.caller_id_for(facts.transferor_kind), timeout))
    s.fx.start_timer(_TP.RECALL, timeout)


def route_to_origin(s: Step) -> None:
    facts, media = s.facts, s.fx.media
    client = facts.client_leg
    if media.overlay_of(client) is not Overlay.HOLD:  # a warning prompt was playing to the client
        media.stop(client)
        media.play_hold(client)
    assert facts.origin is not None
    s.fx.emit(ResolveOrigin(s.t.id, facts.origin))
    s.fx.start_timer(_TP.RESOLVE, facts.settings.resolve_timeout_s)


def apologize(s: Step) -> None:
    s.fx.cancel_timer(_TP.RESOLVE)  # when the origin had nobody to ring
    client = s.facts.client_leg
    s.fx.media.stop(client)
    _play_awaited(s, client, s.facts.settings.prompts.apology)
    s.fx.start_timer(_TP.PROMPT, s.facts.settings.prompt_guard_s)


def voicemail(s: Step) -> None:
    client, prompts = s.facts.client_leg, s.facts.settings.prompts
    s.fx.media.stop(client)
    _play_awaited(s, client, prompts.voicemail_greeting)
    s.t.queue.append((client, prompts.beep))
    s.fx.start_timer(_TP.PROMPT, s.facts.settings.prompt_guard_s)


def _play_awaited(s: Step, leg: str, prompt: PromptRef) -> None:
    s.fx.media.play_prompt(leg, prompt, awaited=True)
    s.t.awaiting.append((leg, prompt))


# -- the recall -----------------------------------------------------------------------------


def on_recall_answered(s: Step) -> Stimulus:
    t = s.t
    assert isinstance(s.event, LegAnswered) and t.recall_leg == s.event.leg
    s.fx.cancel_timer(_TP.RECALL)
    s.fx.adopt_transferor(t.recall_leg)
    t.recall_leg = None
    t.return_mode = OutcomeMode.RECALLED
    return on_line(s.facts)


def on_recall_failed(s: Step) -> Stimulus:
    s.fx.cancel_timer(_TP.RECALL)
    s.t.recall_leg = None
    return after_recall_failed(s.facts)


def on_recall_timeout(s: Step) -> Stimulus:
    t = s.t
    if t.recall_leg is not None:
        s.fx.release_leg(t.recall_leg, EndReason.NO_ANSWER)
        t.recall_leg = None
    return after_recall_failed(s.facts)


def on_a_left_during_warning(s: Step) -> Stimulus:
    """A left instead of taking the client back: the rule, but A is not rung again."""
    t = s.t
    t.awaiting.clear()
    s.fx.cancel_timer(_TP.PROMPT)
    t.rule = s.facts.policy.rule
    if t.rule is FallbackRule.RETURN_TO_TRANSFEROR:
        return after_recall_failed(s.facts)
    return after_transferor_left(s.facts)


# -- the origin's members ---------------------------------------------------------------------


def on_origin_resolved(s: Step) -> None:
    assert isinstance(s.event, TargetResolved)
    branches.ring(s, "o", s.facts.origin_caller_id(s.event.target_kind))


def on_origin_answered(s: Step) -> None:
    t = s.t
    branches.take_answer(s)
    branches.connect_client(s, OutcomeKind.FAILED, cause=t.cause, rule=t.rule, mode=OutcomeMode.ORIGIN)


def on_origin_failed(s: Step) -> Stimulus | None:
    """A member's failure (even a 6xx: they are different users) ends nothing while others ring."""
    event, t = s.event, s.t
    assert isinstance(event, LegFailed)
    t.failures[event.leg] = failure_cause(event.sip_status)
    if branches.alive(s):
        return None
    s.fx.cancel_timer(_TP.NO_ANSWER)
    return _S.APOLOGIZE  # B's failure stays the cause


def on_origin_no_answer(s: Step) -> None:
    for leg in branches.alive(s):
        s.fx.release_leg(leg, EndReason.NO_ANSWER)
    apologize(s)


# -- prompts and the recording ----------------------------------------------------------------


def on_prompt_finished(s: Step) -> None:
    """A prompt we waited for ended (the classification already struck it off)."""
    assert isinstance(s.event, PromptFinished)


def on_warnings_done(s: Step) -> None:
    s.fx.cancel_timer(_TP.PROMPT)
    s.t.awaiting.clear()
    s.t.queue.clear()
    reconnect(s)


def on_apology_done(s: Step) -> None:
    t = s.t
    s.fx.cancel_timer(_TP.PROMPT)
    t.awaiting.clear()
    finish(s, OutcomeKind.FAILED, cause=t.cause, rule=t.rule, mode=OutcomeMode.APOLOGY)
    s.fx.end(EndReason.TRANSFER_FAILED)


def on_next_prompt(s: Step) -> None:
    s.fx.cancel_timer(_TP.PROMPT)
    leg, prompt = s.t.queue.pop(0)
    _play_awaited(s, leg, prompt)
    s.fx.start_timer(_TP.PROMPT, s.facts.settings.prompt_guard_s)


def on_greeting_done(s: Step) -> None:
    s.fx.cancel_timer(_TP.PROMPT)
    _start_recording(s)


def on_greeting_timeout(s: Step) -> None:
    s.t.awaiting.clear()
    s.t.queue.clear()
    s.fx.media.stop(s.facts.client_leg)
    _start_recording(s)


def _start_recording(s: Step) -> None:
    t, client, media = s.t, s.facts.client_leg, s.fx.media
    assert t.number is not None
    media.unmute(client)  # rtpengine's block would keep the client's voice from the recorder too
    media.start_recording(client, t.number)
    s.fx.start_timer(_TP.RECORDING, s.facts.policy.voicemail_max_s)


def on_recording_timeout(s: Step) -> None:
    t = s.t
    finish(s, OutcomeKind.FAILED, cause=t.cause, rule=t.rule, mode=OutcomeMode.VOICEMAIL)
    s.fx.end(EndReason.VOICEMAIL_MAX_LENGTH)


def on_client_left_voicemail(s: Step) -> None:
    t = s.t
    finish(s, OutcomeKind.FAILED, cause=t.cause, rule=t.rule, mode=OutcomeMode.VOICEMAIL)
    s.fx.end(EndReason.CLIENT_HUNG_UP)
