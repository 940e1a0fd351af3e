"""The engine with the real machine and in-memory ports: what it does with events, actions and failures.

No I/O and no sleeping: the ports are fakes that record what they were asked and can be told to raise,
and the clock is a counter.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from controller.config import load_config, parse_config
from controller.core import Conversation, LegState
from controller.engine.engine import TransferEngine
from controller.metrics import Metrics

from .fakes import Failing, Limits, Media, Records, Sip, Timers

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)
CID = "conv-1"


class Rig:
    def __init__(self, failing: Failing | None = None) -> None:
        self.failing = failing or Failing()
        self.records = Records(self.failing)
        self.media = Media(self.failing)
        self.sip = Sip(self.failing)
        self.timers = Timers(self.failing)
        self.metrics = Metrics()
        ticks = itertools.count(1_000, 10)
        self.engine = TransferEngine(CONFIG, self.records, self.media, self.sip, self.timers, self.metrics,
                                     Limits(), clock=lambda: next(ticks))

    def route(self, cid: str = CID, *, state: str = "answered") -> None:
        """What route.invite and call.answered record for an incoming call to extension 100."""
        self.records.conversations[cid] = {
            "tenant": "acme", "direction": "incoming", "call_id": f"call-{cid}", "state": state,
            "from_tag": "ctag", "to_tag": "atag" if state == "answered" else "", "client_number": "+79161112233",
            "did": "+74951110000", "origin": "did:+74951110000->extension:100", "employee": "100"}

    def machine(self, cid: str = CID) -> Conversation:
        return Conversation.from_dict(json.loads(self.records.conversations[cid]["machine"]))

    async def press(self, digits: str, cid: str = CID, tag: str = "atag") -> None:
        for digit in digits:
            await self.engine.on_digit(cid, tag, digit)

    async def fire(self, purpose: str, cid: str = CID) -> None:
        (name,) = self.timers.named(cid, purpose)
        self.timers.active.pop((cid, name))
        await self.engine.on_timer(cid, name)


async def test_ordinary_calls_leave_no_lock_and_no_machine_behind() -> None:
    rig = Rig()
    for n in range(10_000):
        cid = f"c{n}"
        rig.route(cid, state="routing")
        call = {"call_id": f"call-{cid}"}
        await rig.engine.on_notification(cid, "call.answered", call | {"to_tag": "atag"})
        await rig.engine.on_notification(cid, "call.ended", call | {"by_tag": "ctag"})
    assert len(rig.engine.locks) == 0
    assert not any("machine" in record for record in rig.records.conversations.values())
    assert rig.sip.originated == [] and rig.media.done == []


async def test_a_transfer_conversation_frees_its_lock_after_every_event() -> None:
    rig = Rig()
    rig.route()
    await rig.press("#101")
    assert len(rig.engine.locks) == 0
    assert rig.sip.originated == [f"{CID}.t1.b1"]  # 101 is a complete extension number: no inter-digit wait


async def test_a_digit_of_a_call_without_a_client_starts_nothing() -> None:
    rig = Rig()
    rig.records.conversations[CID] = {"tenant": "acme", "direction": "internal", "call_id": "x", "state": "answered",
                                      "from_tag": "a", "to_tag": "b"}
    await rig.press("#101", tag="a")
    assert "machine" not in rig.records.conversations[CID] and rig.sip.originated == []
    assert rig.engine.executor.digit_at == {}  # no latency sample left waiting for an INVITE that never comes


@pytest.mark.parametrize("exc", [LookupError("rtpengine has no leg"), KeyError("x"), ValueError("bad"),
                                 OSError("refused"), RuntimeError("boom"), TypeError("bug")])
async def test_any_exception_of_an_action_is_fed_back_and_the_rest_of_the_list_still_runs(exc: Exception) -> None:
    # B's INVITE cannot be sent (here: rtpengine does not know A's media): whatever the exception type
    rig = Rig(Failing({"media.endpoint_sdp": exc}))
    rig.route()
    await rig.press("#101")
    machine = rig.machine()
    leg = machine.legs[f"{CID}.t1.b1"]
    assert leg.state is LegState.ENDED  # not left trying forever
    assert rig.metrics.errors.labels("OriginateLeg")._value.get() == 1
    # B is unreachable, so the tenant's rule for a failure while A is on the line applies: the warning
    # prompts (the example turns them on for incoming calls), under a deadline, then A has the client back
    assert machine.effective_state.value == "reconnecting"
    played = [a for a in rig.media.done if type(a).__name__ == "PlayPrompt"]
    assert {a.leg for a in played} == {"atag", "ctag"}
    await rig.fire("prompt")
    assert rig.machine().effective_state.value == "talking"
    assert rig.timers.active == {}
    assert len(rig.engine.locks) == 0


async def test_a_failing_bookkeeping_action_changes_nothing_for_the_parties() -> None:
    rig = Rig(Failing({"records.append_event": ConnectionError("redis away")},
                      when=lambda name, args: args[0].startswith("transfer.")))
    rig.route()
    await rig.press("#101")
    (b,) = rig.sip.originated
    await rig.engine.on_notification(CID, "call.answered", {"call_id": f"sip-{b}", "from_tag": "x", "to_tag": "y"})
    await rig.engine.on_notification(CID, "call.ended", {"call_id": "call-conv-1", "by_tag": "atag"})
    machine = rig.machine()
    # A hung up during the consultation: the client talks to B even though the outcome could not be logged
    assert machine.effective_state.value == "talking" and machine.transferor_leg == b


async def test_timer_names_of_prompts_report_the_prompt_finished() -> None:
    rig = Rig()
    rig.route()
    await rig.press("#9")
    await rig.fire("interdigit")  # "9" is nobody: A hears the unknown-number prompt and has the client back
    machine = rig.machine()
    assert machine.effective_state.value == "talking"
    assert len(rig.engine.locks) == 0


async def test_a_call_whose_machine_starts_is_marked_for_kamailio_and_unmarked_when_it_ends() -> None:
    rig = Rig()
    rig.route()
    await rig.press("#")
    assert rig.sip.features == {f"call-{CID}"}  # Kamailio now tells the controller of this call's events
    await rig.engine.on_notification(CID, "call.ended", {"call_id": f"call-{CID}", "by_tag": "ctag"})
    assert rig.machine().state.value == "ended" and rig.sip.features == set()


async def test_a_call_that_ended_before_it_was_marked_ends_its_machine() -> None:
    # the BYE came just before the mark: Kamailio did not notify the controller, but wrote the record
    rig = Rig()
    rig.route()

    async def mark_after_the_bye(call_id: str) -> None:
        rig.records.conversations[CID]["state"] = "ended"
        rig.sip.features.add(call_id)

    rig.sip.mark_feature = mark_after_the_bye  # type: ignore[method-assign]
    await rig.press("#")
    machine = rig.machine()
    assert machine.state.value == "ended" and rig.timers.active == {}
    assert len(rig.engine.locks) == 0


async def test_the_first_digit_passed_on_enables_injection_once_and_only_towards_its_partner() -> None:
    """Ordinary calls are offered without rtpengine's DTMF injection (it transcodes their audio): the
    first digit A passes on to the client re-pairs the two with it, later ones just play."""
    rig = Rig()
    rig.route()
    await rig.press("5")
    await rig.press("7")
    assert rig.media.injecting == [("atag", "ctag")]
    played = [a for a in rig.media.done if type(a).__name__ == "PassDigit"]
    assert [(a.leg, a.digit) for a in played] == [("atag", "5"), ("atag", "7")]


async def test_a_transfer_leg_is_offered_with_injection_so_digits_to_b_need_no_re_pairing() -> None:
    rig = Rig()
    rig.route()
    await rig.press("#101")
    io = json.loads(rig.records.conversations[CID]["io"])
    assert f"{CID}.t1.b1" in io["injecting"]  # the tenant passes digits: Kamailio offers B's leg with it


async def test_an_rtpengine_restart_forgets_the_injection() -> None:
    rig = Rig()
    rig.route()
    await rig.press("5")
    await rig.engine.on_media_restored(CID)
    await rig.press("6")
    assert rig.media.injecting == [("atag", "ctag"), ("atag", "ctag")]


async def test_an_event_costs_one_load_and_one_write_unless_its_actions_learn_something() -> None:
    """Round trips per event: the snapshot is written once, before the actions (a controller that dies
    half-way resumes from the decision); the I/O record again only when an action changed it."""
    rig = Rig()
    rig.route()
    await rig.press("#")
    rig.records.saves.clear()
    await rig.press("1")  # a digit of the number: the machine changes, the I/O record does not
    assert rig.records.saves == [(True, False)]
    rig.records.saves.clear()
    await rig.press("01")  # 101 complete: B is originated, and the I/O record learns B's Call-ID
    assert rig.records.saves[-1] == (False, True)
    io = json.loads(rig.records.conversations[CID]["io"])
    assert f"{CID}.t1.b1" in io["legs"]


# -- REFER ------------------------------------------------------------------------------------------

def refer_params(cid: str = CID, *, number: str = "101", by: str = "atag", at_ms: int = 1_000) -> dict:
    return {"call_id": f"call-{cid}", "conversation": cid, "from_tag": "ctag", "to_tag": "atag", "by_tag": by,
            "number": number, "referred_by": "<sip:100@acme.test>", "at_ms": at_ms}


async def test_a_refer_starts_the_transfer_and_the_phone_hears_of_it() -> None:
    rig = Rig()
    rig.route()
    await rig.engine.on_refer(CID, refer_params())
    # A is the callee of an incoming call: the NOTIFYs go to that side of the client's dialog
    assert rig.sip.notified == [(f"call-{CID}", "callee", 100, False)]
    assert rig.sip.originated == [f"{CID}.t1.b1"]
    assert rig.machine().legs["atag"].state is LegState.UP  # A waits on the line until B answers
    requested = [e for e in rig.records.events if e[0] == "transfer.requested"]
    assert requested and requested[0][2]["trigger"] == "refer" and requested[0][2]["referred_by"]
    assert rig.sip.features == {f"call-{CID}"}


async def test_a_refer_from_the_client_side_is_refused_in_its_notify() -> None:
    rig = Rig()
    rig.route()
    await rig.engine.on_refer(CID, refer_params(by="ctag"))
    assert rig.sip.notified == [(f"call-{CID}", "caller", 403, True)] and rig.sip.originated == []


async def test_a_stale_refer_changes_nothing_and_is_answered() -> None:
    rig = Rig()
    rig.route()
    await rig.engine.on_refer(CID, refer_params(at_ms=-60_000))
    assert rig.sip.notified == [(f"call-{CID}", "callee", 503, True)]
    assert "machine" not in rig.records.conversations[CID] and rig.sip.originated == []


async def test_a_refer_of_a_call_that_cannot_transfer_is_answered_481() -> None:
    rig = Rig()
    rig.route(state="ended")
    await rig.engine.on_refer(CID, refer_params())
    assert rig.sip.notified == [(f"call-{CID}", "callee", 481, True)]


async def test_a_failing_notify_is_fed_back_and_the_transfer_goes_on() -> None:
    rig = Rig(Failing({"sip.notify_referrer": ConnectionError("Kamailio away")}))
    rig.route()
    await rig.engine.on_refer(CID, refer_params())
    assert rig.sip.originated == [f"{CID}.t1.b1"]  # the phone missed its 100 Trying; B still rings


# an attended REFER: A called B (extension 101) internally and asks for the client to join B
REPLACES = "d2-call;to-tag=btag;from-tag=a2tag"


def consultation(rig: Rig, **overrides: str) -> None:
    rig.records.conversations["conv-2"] = {
        "tenant": "acme", "direction": "internal", "call_id": "d2-call", "state": "answered", "from": "100",
        "to": "101", "from_tag": "a2tag", "to_tag": "btag"} | overrides


async def test_an_attended_refer_invites_b_with_replaces() -> None:
    rig = Rig()
    rig.route()
    consultation(rig)
    await rig.engine.on_refer(CID, refer_params() | {"replaces": REPLACES})
    assert rig.sip.originated == [f"{CID}.t1.b1"] and rig.sip.notified[0][2] == 100
    requested = [e for e in rig.records.events if e[0] == "transfer.requested"]
    assert requested[0][2]["attended"] is True


@pytest.mark.parametrize(("overrides", "code"), [
    ({"state": "ended"}, 481), ({"to_tag": "other"}, 481), ({"call_id": "elsewhere"}, 481),
    ({"tenant": "beta"}, 403), ({"direction": "incoming"}, 403), ({"from": "102"}, 403),
])
async def test_a_replaces_naming_no_dialog_of_a_is_refused(overrides: dict[str, str], code: int) -> None:
    rig = Rig()
    rig.route()
    consultation(rig, **overrides)
    await rig.engine.on_refer(CID, refer_params() | {"replaces": REPLACES})
    assert rig.sip.notified == [(f"call-{CID}", "callee", code, True)] and rig.sip.originated == []


async def test_the_phones_hold_starts_a_machine_and_plays_the_music() -> None:
    rig = Rig()
    rig.route()
    hold = {"call_id": f"call-{CID}", "from_tag": "ctag", "to_tag": "atag", "by_tag": "atag"}
    await rig.engine.on_phone_held(CID, hold)
    assert [type(action).__name__ for action in rig.media.done][:1] == ["PlayHoldMusic"]
    await rig.engine.on_notification(CID, "leg.resumed", hold)
    assert "StopMedia" in [type(action).__name__ for action in rig.media.done]


def far_end_rig(*, trunk_refers: bool = True, tenant_refers: bool = True) -> Rig:
    """The example configuration with the carrier trunk accepting REFER and acme handing outside
    transfers to it (either switched off by the arguments)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["trunks"]["carrier"]["refer"] = trunk_refers
    data["tenants"]["acme"]["outside_transfers"] = "refer" if tenant_refers else "take_over"
    config = parse_config(data, base_dir=EXAMPLE.parent)
    rig = Rig()
    rig.engine = TransferEngine(config, rig.records, rig.media, rig.sip, rig.timers, rig.metrics, Limits(),
                                clock=lambda: 1_000)
    rig.route()
    rig.records.conversations[CID]["trunk"] = "carrier"  # the client called in through it
    return rig


async def test_an_outside_transfer_is_handed_to_the_clients_trunk_as_a_refer() -> None:
    rig = far_end_rig()
    await rig.press("#89035556677")
    await rig.fire("interdigit")
    # to the client's side (the caller of an incoming call), as the employee's side: the trunk calls B
    ((call_id, side, refer_to, referred_by, transfer_id),) = rig.sip.far_refers
    assert (call_id, side, transfer_id) == (f"call-{CID}", "caller", "t1")
    assert refer_to.startswith("sip:+79035556677@") and referred_by.startswith("sip:+74951110000@")
    assert rig.sip.originated == []  # the PBX places no call of its own
    assert rig.machine().effective_state.value == "far_end_calling"
    # the trunk's final NOTIFY: it connected the client to B; the PBX ends both halves of its dialog
    await rig.engine.on_notification(CID, "transfer.far_end", {"call_id": f"call-{CID}", "transfer_id": "t1",
                                                                "status": 200})
    assert rig.machine().state.value == "ended"
    assert rig.sip.byes == [(f"call-{CID}", "both")]  # the client's side and A, in one exchange
    assert rig.metrics.far_end_refers._value.get() == 1


@pytest.mark.parametrize(("trunk_refers", "tenant_refers"), [(False, True), (True, False)])
async def test_without_both_the_trunks_flag_and_the_tenants_choice_the_pbx_takes_over(
        trunk_refers: bool, tenant_refers: bool) -> None:
    rig = far_end_rig(trunk_refers=trunk_refers, tenant_refers=tenant_refers)
    await rig.press("#89035556677")
    await rig.fire("interdigit")
    assert rig.sip.far_refers == [] and rig.sip.originated == [f"{CID}.t1.b1"]


async def test_the_trunks_failure_gives_the_client_back_to_a() -> None:
    rig = far_end_rig()
    await rig.press("#89035556677")
    await rig.fire("interdigit")
    await rig.engine.on_notification(CID, "transfer.far_end", {"call_id": f"call-{CID}", "transfer_id": "t1",
                                                                "status": "garbage"})
    assert rig.machine().effective_state.value != "far_end_calling"  # not a number: a failure, never a hang
    assert rig.sip.byes == []  # the client's dialog stays with the PBX
