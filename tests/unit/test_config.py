"""Configuration loading and validation: every rule names the offending field by its dotted path."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller import cli, wire
from controller.config import (
    CallerId,
    Config,
    ConfigError,
    DidRoute,
    Extension,
    Prompt,
    TalkOptions,
    TransferRule,
    load_config,
    parse_config,
)
from controller.core.settings import FallbackPolicy, Settings
from controller.core.types import CallerIdPolicy, Direction, FallbackRule
from controller.numbering_plan import NumberingPlan

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _walk(data: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, last = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    return data, last


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        parent, last = _walk(data, path)
        parent[last] = value

    return mutate


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        parent, last = _walk(data, path)
        del parent[last]

    return mutate


def add_tenant(tenant_id: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    """A second tenant copied from acme with its own domain and no DIDs, then ``changes``."""

    def mutate(data: dict[str, Any]) -> None:
        tenant = copy.deepcopy(data["tenants"]["acme"])
        tenant.update(domain=f"{tenant_id}.test", dids={})
        tenant.update(changes)
        data["tenants"][tenant_id] = tenant

    return mutate


def add_did(number: Any) -> Callable[[dict[str, Any]], None]:
    """A DID key as YAML gives it when unquoted (an int)."""

    def mutate(data: dict[str, Any]) -> None:
        data["tenants"]["acme"]["dids"][number] = {"extension": "100"}

    return mutate


def both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


def expect_problem(error: ConfigError, path: str, fragment: str) -> None:
    lines = str(error).splitlines()
    assert any(line.startswith(f"{path}: ") and fragment in line for line in lines), str(error)
    assert any(p == path and fragment in message for p, message in error.problems), error.problems


ACME = "tenants.acme"
OUT = f"{ACME}.transfer_rules.outgoing"
PLAN = f"{ACME}.numbering_plan"
IN = f"{ACME}.transfer_rules.incoming"

# (id, mutation of example.yaml, dotted path that must be named, fragment of the message)
INVALID = [
    # addresses are IP addresses
    ("sip-address", put("node.sip.address", "256.0.0.1"), "node.sip.address", "must be an IP address"),
    ("trunk-hostname", put("trunks.carrier.address", "sip.carrier.example"), "trunks.carrier.address", "IP"),
    ("media-address", put("node.rtpengine.media_address", "x"), "node.rtpengine.media_address", "IP address"),
    ("redis-address-int", put("node.redis.address", 1), "node.redis.address", "quoted string"),
    # ports 1..65535
    ("port-zero", put("node.controller.port", 0), "node.controller.port", "greater than or equal to 1"),
    ("port-too-big", put("trunks.carrier.port", 65536), "trunks.carrier.port", "less than or equal to 65535"),
    ("port-not-int", put("node.dtmf.port", "abc"), "node.dtmf.port", "valid integer"),
    # rtpengine range
    (
        "range-inverted",
        put("node.rtpengine.port_min", 31000),
        "node.rtpengine.port_max",
        "greater than port_min",
    ),
    (
        "range-odd",
        put("node.rtpengine.port_max", 30998),
        "node.rtpengine.port_max",
        "999 ports; need an even",
    ),
    (
        "range-small",
        put("node.rtpengine.port_max", 30001),
        "node.rtpengine.port_max",
        "2 ports; need an even",
    ),
    # listening ports distinct
    ("port-reused", put("node.dtmf.port", 5060), "node.dtmf.port", "already used by node.sip.port"),
    ("ng-port-reused", put("node.rtpengine.ng_port", 8090), "node.rtpengine.ng_port", "node.controller.port"),
    ("port-in-media", put("node.redis.port", 30010), "node.redis.port", "inside the rtpengine media range"),
    # trunks
    ("transport", put("trunks.carrier.transport", "sctp"), "trunks.carrier.transport", "'udp' or 'tcp'"),
    (
        "trunk-same-ip",
        put("trunks.backup", {"address": "127.0.0.2", "port": 5062}),
        "trunks.backup.address",
        "same address as trunks.carrier",
    ),
    (
        "trunk-reference",
        put(f"{ACME}.outbound_trunk", "nope"),
        f"{ACME}.outbound_trunk",
        "unknown trunk 'nope'",
    ),
    # DIDs
    ("did-format", put(f"{ACME}.dids.12a", {"extension": "100"}), f"{ACME}.dids.12a", "invalid key: must be"),
    ("did-too-short", put(f"{ACME}.dids.+12", {"extension": "100"}), f"{ACME}.dids.+12", "3..20 digits"),
    (
        "did-unquoted",
        add_did(74951119999),
        f"{ACME}.dids.74951119999",
        "invalid key: must be a quoted string",
    ),
    (
        "did-other-tenant",
        add_tenant("beta", dids={"74951110000": {"extension": "100"}}),
        "tenants.beta.dids.74951110000",
        "already used by tenants.acme.dids.+74951110000",
    ),
    (
        "did-twice-in-tenant",
        put(f"{ACME}.dids.74951110001", {"extension": "100"}),
        f"{ACME}.dids.74951110001",
        "already used by tenants.acme.dids.+74951110001",
    ),
    ("did-no-route", put(f"{ACME}.dids.+74951110000", {}), f"{ACME}.dids.+74951110000", "must route to"),
    (
        "did-two-routes",
        put(f"{ACME}.dids.+74951110000", {"extension": "100", "department": "sales"}),
        f"{ACME}.dids.+74951110000.department",
        "not both",
    ),
    (
        "did-unknown-extension",
        put(f"{ACME}.dids.+74951110000.extension", "999"),
        f"{ACME}.dids.+74951110000.extension",
        "unknown extension '999'",
    ),
    (
        "did-unknown-department",
        put(f"{ACME}.dids.+74951110001.department", "support"),
        f"{ACME}.dids.+74951110001.department",
        "unknown department 'support'",
    ),
    # extensions
    ("ext-short", put(f"{ACME}.extensions.1", {}), f"{ACME}.extensions.1", "must be 2..8 digits"),
    ("ext-long", put(f"{ACME}.extensions.123456789", {}), f"{ACME}.extensions.123456789", "2..8 digits"),
    ("ext-letters", put(f"{ACME}.extensions.10a", {}), f"{ACME}.extensions.10a", "2..8 digits"),
    (
        "contact-scheme",
        put(f"{ACME}.extensions.100.contact", "http://x"),
        f"{ACME}.extensions.100.contact",
        "must be a sip: or sips: URI (got 'http://x')",
    ),
    (
        "contact-no-host",
        put(f"{ACME}.extensions.100.contact", "sip:"),
        f"{ACME}.extensions.100.contact",
        "sip:",
    ),
    (
        "password-empty",
        put(f"{ACME}.extensions.101.password", ""),
        f"{ACME}.extensions.101.password",
        "at least 1",
    ),
    # departments
    (
        "member-unknown",
        put(f"{ACME}.departments.sales.members", ["101", "777"]),
        f"{ACME}.departments.sales.members.1",
        "unknown extension '777'",
    ),
    (
        "member-twice",
        put(f"{ACME}.departments.sales.members", ["101", "102", "101"]),
        f"{ACME}.departments.sales.members.2",
        "listed twice",
    ),
    (
        "members-empty",
        put(f"{ACME}.departments.sales.members", []),
        f"{ACME}.departments.sales.members",
        "at least",
    ),
    (
        "member-unquoted",
        put(f"{ACME}.departments.sales.members", [101]),
        f"{ACME}.departments.sales.members.0",
        "quoted",
    ),
    # one number, one meaning
    (
        "dept-number-is-extension",
        put(f"{ACME}.departments.sales.number", "100"),
        f"{ACME}.departments.sales.number",
        "number '100' is already used by extensions.100",
    ),
    (
        "alias-is-extension",
        put(f"{ACME}.sip_aliases.101", "sip:x@127.0.0.9"),
        f"{ACME}.sip_aliases.101",
        "already used by extensions.101",
    ),
    (
        "alias-is-department",
        put(f"{ACME}.sip_aliases.200", "sip:x@127.0.0.9"),
        f"{ACME}.sip_aliases.200",
        "already used by departments.sales",
    ),
    (
        "two-departments-one-number",
        put(f"{ACME}.departments.support", {"number": "200", "members": ["100"]}),
        f"{ACME}.departments.support.number",
        "already used by departments.sales",
    ),
    ("alias-uri", put(f"{ACME}.sip_aliases.300", "tel:+100"), f"{ACME}.sip_aliases.300", "sip: or sips: URI"),
    # talk options
    # the core's own rule (controller.core.settings.TalkOptions), reported at the configuration's field
    (
        "talk-key-digit",
        put(f"{ACME}.talk_options.transfer", "5"),
        f"{ACME}.talk_options.transfer",
        "talk option transfer='5': 1-4 DTMF symbols starting with *, # or A-D",
    ),
    (
        "talk-key-five-symbols",
        put(f"{ACME}.talk_options.conference", "#####"),
        f"{ACME}.talk_options.conference",
        "talk option conference='#####'",
    ),
    ("talk-key-empty", put(f"{ACME}.talk_options.return", ""), f"{ACME}.talk_options.return", "talk option back=''"),
    (
        "talk-key-not-dtmf",
        put(f"{ACME}.talk_options.transfer", "#x"),
        f"{ACME}.talk_options.transfer",
        "1-4 DTMF symbols",
    ),
    ("talk-key-unquoted", put(f"{ACME}.talk_options.transfer", 5), f"{ACME}.talk_options.transfer", "quoted"),
    (
        "transfer-equals-return",
        put(f"{ACME}.talk_options.return", "#"),
        f"{ACME}.talk_options.return",
        "must differ from transfer ('#')",
    ),
    (
        "return-prefix-of-conference",
        put(f"{ACME}.talk_options", {"transfer": "#", "return": "*", "conference": "*2"}),
        f"{ACME}.talk_options.return",
        "'back' and 'conference' must not be prefixes of each other",
    ),
    (
        "first-digit-low",
        put(f"{ACME}.talk_options.first_digit_timeout_ms", 999),
        f"{ACME}.talk_options.first_digit_timeout_ms",
        "greater than or equal to 1000",
    ),
    (
        "resolve-high",
        put(f"{ACME}.talk_options.resolve_timeout_ms", 30001),
        f"{ACME}.talk_options.resolve_timeout_ms",
        "less than or equal to 30000",
    ),
    (
        "prompt-guard-low",
        put(f"{IN}.prompt_guard_ms", 4999),
        f"{IN}.prompt_guard_ms",
        "greater than or equal to 5000",
    ),
    (
        "interdigit-low",
        put(f"{ACME}.talk_options.interdigit_timeout_ms", 499),
        f"{ACME}.talk_options.interdigit_timeout_ms",
        "greater than or equal to 500",
    ),
    (
        "interdigit-high",
        put(f"{ACME}.talk_options.interdigit_timeout_ms", 10001),
        f"{ACME}.talk_options.interdigit_timeout_ms",
        "less than or equal to 10000",
    ),
    # caller id and transfer rules
    (
        "caller-id-policy",
        put(f"{ACME}.caller_id.policy", "anonymous"),
        f"{ACME}.caller_id.policy",
        "'company'",
    ),
    ("on-failure", put(f"{IN}.on_failure", "hangup"), f"{IN}.on_failure", "'voicemail'"),
    (
        "timeout-low",
        put(f"{IN}.no_answer_timeout_s", 0),
        f"{IN}.no_answer_timeout_s",
        "greater than or equal to 1",
    ),
    (
        "timeout-high",
        put(f"{OUT}.no_answer_timeout_s", 301),
        f"{OUT}.no_answer_timeout_s",
        "less than or equal to 300",
    ),
    (
        "return-to-origin-without-return",
        put(f"{OUT}.return_to_origin", True),
        f"{OUT}.return_to_origin",
        "only allowed with on_failure: return_to_transferor (on_failure is 'apologize')",
    ),
    (
        "warn-transferor-without-return",
        put(f"{OUT}.warn_transferor", True),
        f"{OUT}.warn_transferor",
        "only allowed with on_failure: return_to_transferor",
    ),
    (
        "warn-client-with-voicemail",
        put(f"{IN}.on_failure", "voicemail"),
        f"{IN}.warn_client",
        "(on_failure is 'voicemail')",
    ),
    # prompts
    (
        "prompt-file-missing",
        put(f"{OUT}.apology", {"source": "file", "file": "/nonexistent/x.wav"}),
        f"{OUT}.apology.file",
        "file not found: /nonexistent/x.wav",
    ),
    (
        "prompt-file-absent",
        put(f"{OUT}.apology", {"source": "file"}),
        f"{OUT}.apology.file",
        "required when source",
    ),
    (
        "prompt-file-is-dir",
        put(f"{OUT}.apology", {"source": "file", "file": "/"}),
        f"{OUT}.apology.file",
        "regular",
    ),
    ("tts-no-text", put(f"{OUT}.apology", {"source": "tts"}), f"{OUT}.apology.text", "required (non-empty)"),
    ("tts-blank-text", put(f"{OUT}.apology.text", "   "), f"{OUT}.apology.text", "required (non-empty)"),
    ("voice", put(f"{OUT}.apology.voice", "de"), f"{OUT}.apology.voice", "'en' or 'ru'"),
    (
        "prompt-source",
        put(f"{IN}.voicemail_greeting.source", "mp3"),
        f"{IN}.voicemail_greeting.source",
        "'tts'",
    ),
    (
        "prompt-text-without-tts",
        put(f"{IN}.apology", {"source": "system", "text": "hi"}),
        f"{IN}.apology.text",
        "only used with source: tts",
    ),
    (
        "hold-music-missing",
        put(f"{ACME}.hold_music", "/nonexistent/hold.wav"),
        f"{ACME}.hold_music",
        "file not found",
    ),
    # tenant basics
    ("domain", put(f"{ACME}.domain", "acme test"), f"{ACME}.domain", "domain name or an IP"),
    (
        "domain-twice",
        add_tenant("beta", domain="ACME.test"),
        "tenants.beta.domain",
        "already used by tenants.acme",
    ),
    ("company-number", put(f"{ACME}.company_number", "+7-495"), f"{ACME}.company_number", "phone number"),
    ("company-number-int", put(f"{ACME}.company_number", 74950000000), f"{ACME}.company_number", "quoted"),
    ("tenant-id", add_tenant("be ta"), "tenants.be ta", "invalid key"),
    ("required-domain", drop(f"{ACME}.domain"), f"{ACME}.domain", "required"),
    ("required-trunk-address", put("trunks.carrier", {"port": 5060}), "trunks.carrier.address", "required"),
    # unknown keys
    ("unknown-top", put("nodes", {}), "nodes", "unknown key"),
    (
        "unknown-nested",
        put(f"{ACME}.extensions.100.phone", "x"),
        f"{ACME}.extensions.100.phone",
        "unknown key",
    ),
    ("unknown-rule", put(f"{IN}.retry", 3), f"{IN}.retry", "unknown key"),
    ("redis-db", put("node.redis.db", -1), "node.redis.db", "greater than or equal to 0"),
    # the numbering plan
    ("plan-country-int", put(f"{PLAN}.country_code", 7), f"{PLAN}.country_code", "quoted string"),
    ("plan-country-zero", put(f"{PLAN}.country_code", "07"), f"{PLAN}.country_code", "no leading 0"),
    ("plan-intl-int", put(f"{PLAN}.international_prefix", 0), f"{PLAN}.international_prefix", "quoted"),
    (
        "plan-prefixes-equal",
        put(f"{PLAN}.international_prefix", "8"),
        f"{PLAN}.international_prefix",
        "must differ from national_prefix",
    ),
    ("plan-no-lengths", put(f"{PLAN}.national_number_lengths", []), f"{PLAN}.national_number_lengths", "at least 1"),
    (
        "plan-length-past-e164",
        both(put(f"{PLAN}.country_code", "380"), put(f"{PLAN}.national_number_lengths", [9, 13])),
        f"{PLAN}.national_number_lengths",
        "exceed E.164's 15",
    ),
    ("plan-prefix-no-plus", put(f"{PLAN}.allowed_prefixes", ["+7", "7495"]), f"{PLAN}.allowed_prefixes.1", "'+'"),
    ("plan-prefix-int", put(f"{PLAN}.denied_prefixes", [7809]), f"{PLAN}.denied_prefixes.0", "quoted string"),
    (
        "plan-limit-negative",
        put(f"{PLAN}.max_outside_transfers_per_minute", -1),
        f"{PLAN}.max_outside_transfers_per_minute",
        "greater than or equal to 0",
    ),
    ("plan-unknown-key", put(f"{PLAN}.allowed", ["+7"]), f"{PLAN}.allowed", "unknown key"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_configuration_names_the_field(
    mutate: Callable[[dict[str, Any]], None], path: str, fragment: str
) -> None:
    data = example_data()
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    expect_problem(caught.value, path, fragment)


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.node == parse_config({}).node  # the example shows the defaults
    assert config.trunks["carrier"].address == "127.0.0.2"
    acme = config.tenants["acme"]
    assert (acme.name, acme.domain, acme.company_number, acme.outbound_trunk) == (
        "Acme Ltd",
        "acme.test",
        "+74950000000",
        "carrier",
    )
    assert acme.extensions == {
        "100": Extension(name="Anna", contact="sip:100@127.0.0.3:5080", password="anna-example-secret"),
        "101": Extension(name="Boris", contact="sip:101@127.0.0.3:5081", password="boris-example-secret"),
        "102": Extension(name="Vera", password="vera-example-secret"),
    }
    assert acme.departments["sales"].number == "200"
    assert acme.departments["sales"].members == ["101", "102"]
    assert acme.dids == {
        "+74951110000": DidRoute(extension="100"),
        "+74951110001": DidRoute(department="sales"),
    }
    assert acme.sip_aliases == {"300": "sip:reception@127.0.0.4:5060"}
    assert acme.caller_id.policy == "did"
    assert (acme.talk_options.transfer, acme.talk_options.return_, acme.talk_options.conference) == (
        "#",
        "*",
        "#",  # `#` again after B answered: the three-way conference
    )
    incoming, outgoing = acme.transfer_rules.incoming, acme.transfer_rules.outgoing
    assert (incoming.on_failure, incoming.warn_transferor, incoming.warn_client) == (
        "return_to_transferor",
        True,
        True,
    )
    assert outgoing.on_failure == "apologize"
    assert outgoing.apology == Prompt(source="tts", text="Sorry, the transfer failed. Goodbye.", voice="en")


def test_defaults() -> None:
    config = parse_config({})
    node = config.node
    assert (node.name, node.sip.port, node.kamailio_rpc.port, node.controller.port) == (
        "local",
        5060,
        5071,
        8090,
    )
    assert (node.rtpengine.ng_port, node.rtpengine.port_min, node.rtpengine.port_max) == (22222, 30000, 30999)
    assert (node.dtmf.port, node.redis.port, node.redis.db) == (5999, 6379, 0)
    assert (node.call_keys_ttl_after_end_s, node.max_call_duration_s) == (60, wire.MAX_CALL_DURATION_S)
    assert config.trunks == {} and config.tenants == {}
    tenant = parse_config(
        {
            "trunks": {"t": {"address": "10.0.0.1"}},
            "tenants": {"x": {"domain": "x.test", "company_number": "123", "outbound_trunk": "t"}},
        }
    ).tenants["x"]
    rule = tenant.transfer_rules.incoming
    assert (rule.no_answer_timeout_s, rule.on_failure, rule.voicemail_max_s) == (
        20,
        "return_to_transferor",
        120,
    )
    assert tenant.caller_id.policy == "did" and tenant.hold_music is None


def test_defaults_are_the_core_settings_defaults() -> None:
    """One copy of every default: the state machine's (controller.core.settings)."""
    core, fallback = Settings(), FallbackPolicy()
    talk = TalkOptions()
    assert (talk.transfer, talk.return_, talk.conference) == (core.talk_options.transfer, core.talk_options.back, "#")
    assert talk.first_digit_timeout_ms == core.first_digit_timeout_s * 1000
    assert talk.interdigit_timeout_ms == core.interdigit_timeout_s * 1000
    assert talk.resolve_timeout_ms == core.resolve_timeout_s * 1000
    assert talk.max_digits == core.max_number_length
    assert (talk.other_digits == "pass") is core.pass_other_digits
    assert CallerId().policy is core.caller_id_policy
    rule = TransferRule()
    assert rule.no_answer_timeout_s == core.no_answer_timeout_s == fallback.transferor_ring_timeout_s
    assert rule.prompt_guard_ms == core.prompt_guard_s * 1000
    assert (rule.on_failure, rule.return_to_origin, rule.voicemail_max_s) == (
        fallback.rule, fallback.return_to_origin, fallback.voicemail_max_s)
    assert (rule.warn_transferor, rule.warn_client) == (
        fallback.warn_transferor_prompt is not None, fallback.warn_client_prompt is not None)


def test_enums_are_the_cores() -> None:
    config = load_config(EXAMPLE)
    acme = config.tenants["acme"]
    assert acme.caller_id.policy is CallerIdPolicy.DID
    assert acme.transfer_rules.outgoing.on_failure is FallbackRule.APOLOGIZE
    assert acme.transfer_rules.for_direction(Direction.OUTGOING) is acme.transfer_rules.outgoing
    assert acme.transfer_rules.for_direction("incoming") is acme.transfer_rules.incoming


def test_check_config_refuses_a_digit_talk_key_naming_the_field(tmp_path: Path, capsys) -> None:
    data = example_data()
    data["tenants"]["acme"]["talk_options"]["transfer"] = "5"
    path = tmp_path / "digit.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == (
        ("tenants.acme.talk_options.transfer", "talk option transfer='5': 1-4 DTMF symbols starting with *, # or A-D"),)
    assert cli.main(["check-config", str(path)]) == 1
    assert ("tenants.acme.talk_options.transfer: talk option transfer='5': 1-4 DTMF symbols starting with *, # or A-D"
            in capsys.readouterr().err)


# Edges that must stay accepted (so the rules above are not simply "reject everything").
VALID_EDGES = [
    ("port-1", put("trunks.carrier.port", 1)),
    ("port-65535", put("trunks.carrier.port", 65535)),
    ("range-4", put("node.rtpengine.port_max", 30003)),
    ("interdigit-500", put(f"{ACME}.talk_options.interdigit_timeout_ms", 500)),
    ("interdigit-10000", put(f"{ACME}.talk_options.interdigit_timeout_ms", 10000)),
    ("timeout-1", put(f"{IN}.no_answer_timeout_s", 1)),
    ("timeout-300", put(f"{IN}.no_answer_timeout_s", 300)),
    ("conference-equals-transfer", put(f"{ACME}.talk_options.conference", "#")),
    ("conference-off", put(f"{ACME}.talk_options.conference", None)),
    ("talk-keys-four-symbols", put(f"{ACME}.talk_options", {"transfer": "##", "return": "*1", "conference": "A"})),
    ("ipv6-trunk", put("trunks.carrier.address", "::1")),
    ("sips-contact", put(f"{ACME}.extensions.100.contact", "sips:100@[::1]:5061;transport=tls")),
    (
        "trunks-share-ip-by-port",
        both(
            put("trunks.carrier.match_port", True),
            put("trunks.backup", {"address": "127.0.0.2", "port": 5062, "match_port": True}),
        ),
    ),
    ("did-without-plus", put(f"{ACME}.dids.74951112222", {"extension": "101"})),
    ("voicemail", both(put(f"{OUT}.on_failure", "voicemail"), drop(f"{OUT}.apology"))),
    ("second-tenant", add_tenant("beta", dids={"+74951113333": {"department": "sales"}})),
    ("plan-omitted", drop(PLAN)),
    ("plan-no-outside-transfers", put(f"{PLAN}.max_outside_transfers_concurrent", 0)),
    ("plan-everywhere", put(f"{PLAN}.allowed_prefixes", ["+"])),
    ("plan-nothing-denied", put(f"{PLAN}.denied_prefixes", [])),
    ("plan-no-national-prefix", put(f"{PLAN}.national_prefix", "")),
]


@pytest.mark.parametrize("mutate", [c[1] for c in VALID_EDGES], ids=[c[0] for c in VALID_EDGES])
def test_valid_edges(mutate: Callable[[dict[str, Any]], None]) -> None:
    data = example_data()
    mutate(data)
    assert isinstance(parse_config(data), Config)


def test_the_example_shows_the_default_numbering_plan() -> None:
    assert load_config(EXAMPLE).tenants["acme"].numbering_plan == NumberingPlan()
    data = example_data()
    del data["tenants"]["acme"]["numbering_plan"]
    assert parse_config(data).tenants["acme"].numbering_plan == NumberingPlan()


def test_a_plan_for_another_country_gets_that_countrys_lists() -> None:
    data = example_data()
    data["tenants"]["acme"]["numbering_plan"] = {"country_code": "49", "national_prefix": "0",
                                                 "international_prefix": "00", "national_number_lengths": [10, 11]}
    plan = parse_config(data).tenants["acme"].numbering_plan
    assert plan.allowed_prefixes == ["+49"] and "+7809" not in plan.denied_prefixes and "+881" in plan.denied_prefixes


def test_all_problems_reported_together() -> None:
    data = example_data()
    put(f"{ACME}.extensions.100.contact", "http://x")(data)
    put("node.sip.port", 0)(data)
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert [path for path, _ in caught.value.problems] == ["node.sip.port", f"{ACME}.extensions.100.contact"]
    assert len(str(caught.value).splitlines()) == 2


def test_prompt_and_hold_music_files_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "sorry.wav").write_bytes(b"RIFF")
    (tmp_path / "hold.wav").write_bytes(b"RIFF")
    data = example_data()
    put(f"{OUT}.apology", {"source": "file", "file": "sorry.wav"})(data)
    put(f"{ACME}.hold_music", "hold.wav")(data)
    tenant = parse_config(data, base_dir=tmp_path).tenants["acme"]
    assert tenant.transfer_rules.outgoing.apology.file == tmp_path / "sorry.wav"
    assert tenant.hold_music == tmp_path / "hold.wav"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir=tmp_path / "elsewhere")
    expect_problem(
        caught.value, f"{OUT}.apology.file", f"file not found: {tmp_path / 'elsewhere' / 'sorry.wav'}"
    )
    expect_problem(caught.value, f"{ACME}.hold_music", "file not found")


def test_load_config_resolves_relative_to_the_yaml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "hold.wav").write_bytes(b"RIFF")
    data = example_data()
    data["tenants"]["acme"]["hold_music"] = "audio/hold.wav"
    config_file = tmp_path / "controller.yaml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.chdir("/")
    assert load_config(config_file).tenants["acme"].hold_music == tmp_path / "audio" / "hold.wav"


def test_file_errors_carry_the_file_name(tmp_path: Path) -> None:
    data = example_data()
    data["node"]["sip"]["port"] = 70000
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    assert str(caught.value).startswith(f"{config_file}: node.sip.port: ")
    assert caught.value.problems[0][0] == "node.sip.port"


def test_yaml_syntax_error_has_line_number(tmp_path: Path) -> None:
    config_file = tmp_path / "broken.yaml"
    config_file.write_text(
        "node:\n  name: x\n  sip: {address: 127.0.0.1, port: 5060\ntrunks: {}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    message = str(caught.value)
    assert message.startswith(f"{config_file}: line 4, column ")
    assert "YAML syntax error" in message


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    config_file = tmp_path / "dup.yaml"
    config_file.write_text("node:\n  name: a\n  name: b\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_file)
    assert "line 3" in str(caught.value) and "duplicate key 'name' (first on line 2)" in str(caught.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # '<<' merges are not duplicates: an explicit key overrides the merged one.
    config_file = tmp_path / "merge.yaml"
    config_file.write_text(
        "node:\n  sip: &ep {address: 127.0.0.1, port: 5060}\n  dtmf: {<<: *ep, port: 5998}\n",
        encoding="utf-8",
    )
    assert load_config(config_file).node.dtmf.port == 5998


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(missing)


@pytest.mark.parametrize(
    ("text", "fragment"), [("", "the file is empty"), ("- a\n- b\n", "must be a mapping")]
)
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str, fragment: str) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=fragment):
        load_config(config_file)


def test_config_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as caught:
        parse_config({"nodes": 1})
    error = caught.value
    assert isinstance(error, ConfigError)
    clone = pickle.loads(pickle.dumps(error))
    assert (str(clone), clone.problems) == (str(error), error.problems)


def test_config_is_frozen() -> None:
    config = load_config(EXAMPLE)
    with pytest.raises(ValidationError):
        config.tenants["acme"].name = "Other"  # type: ignore[misc]


def test_lookup_did_tolerates_the_plus() -> None:
    config = load_config(EXAMPLE)
    for number in ("+74951110000", "74951110000"):
        found = config.lookup_did(number)
        assert found is not None
        assert (found.tenant_id, found.tenant.domain, found.route) == ("acme", "acme.test", DidRoute(extension="100"))
    assert config.lookup_did("74951110001").did == "+74951110001"  # type: ignore[union-attr]
    assert config.lookup_did("+74951119999") is None
    assert config.lookup_did("++74951110000") is None
    assert config.lookup_did("") is None


@given(digits=st.from_regex(r"[0-9]{3,20}", fullmatch=True), configured_plus=st.booleans())
def test_did_found_with_either_spelling(digits: str, configured_plus: bool) -> None:
    data = example_data()
    data["tenants"]["acme"]["dids"] = {("+" if configured_plus else "") + digits: {"extension": "102"}}
    config = parse_config(data)
    for dialled in (digits, "+" + digits):
        match = config.lookup_did(dialled)
        assert match is not None and match.route.extension == "102"
