"""The controller's one validated configuration, read from a YAML file.

Per-field rules (types, ranges, formats) sit on the fields; rules that relate several fields are
checked in each model's after-validator, which reports every offending field by its exact path.
``parse_config``/``load_config`` turn all of it into a ``ConfigError`` with one
``dotted.path: message`` line per problem, so a carrier can fix a long file from the error alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from controller import wire
from controller.core.settings import FallbackPolicy, Settings
from controller.core.settings import TalkOptions as CoreTalkOptions
from controller.core.types import CallerIdPolicy, Direction, FallbackRule
from controller.errors import ControllerError
from controller.numbering_plan import NumberingPlan
from controller.routing.table import did_key, normalize_ip

# A DID, a company number or a dialled external number: optional '+', then digits only.
PHONE_NUMBER_RE = re.compile(r"\+?[0-9]{3,20}")
EXTENSION_RE = re.compile(r"[0-9]{2,8}")
# Names end up in Redis keys, metric labels and logs: keep them plain.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_SIP_URI_RE = re.compile(
    r"sips?:"
    r"(?:[^@\s;?]+@)?"  # user[:password]@
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"  # host: [IPv6], IPv4 or name
    r"(?::[0-9]{1,5})?"  # port
    r"(?:;[^\s?]*)?"  # ;uri-parameters
    r"(?:\?\S*)?",  # ?headers
    re.IGNORECASE,
)

# Error type used by after-validators to report problems located below the model itself.
_PROBLEMS = "config_problems"

Problem = tuple[tuple[str | int, ...], str]


class ConfigError(ControllerError, ValueError):
    """The configuration is unusable; ``problems`` holds ``(dotted_path, message)`` pairs."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message, tuple(problems))
        self.message = message
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------------------------
# Field types


def _quoted(value: Any) -> Any:
    # YAML reads 100 as an int, +7495... as an int without its '+', and 0100 as octal 64:
    # numbers that are really identifiers must be quoted, never silently converted.
    if not isinstance(value, str):
        raise ValueError(f"must be a quoted string in YAML (got {type(value).__name__} {value!r})")
    return value


def _matching(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{what} (got {value!r})")
        return value

    return AfterValidator(check)


def _ip_address(value: str) -> str:
    normalized = normalize_ip(value)
    if normalized is None or "[" in value:
        raise ValueError(f"must be an IP address (got {value!r})")
    return normalized


def _sip_uri(value: str) -> str:
    if not _SIP_URI_RE.fullmatch(value):
        raise ValueError(f"must be a sip: or sips: URI (got {value!r})")
    return value


def _domain(value: str) -> str:
    if normalize_ip(value) is None and not _DOMAIN_RE.fullmatch(value):
        raise ValueError(f"must be a domain name or an IP address (got {value!r})")
    return value.lower()  # domains compare case-insensitively


_Quoted = BeforeValidator(_quoted)
PhoneNumber = Annotated[
    str, _Quoted, _matching(PHONE_NUMBER_RE, "must be a phone number: optional '+' and 3..20 digits")
]
ExtensionNumber = Annotated[str, _Quoted, _matching(EXTENSION_RE, "must be 2..8 digits")]
Name = Annotated[str, _Quoted, _matching(_NAME_RE, "must be 1..64 letters, digits, '_', '.' or '-'")]
# what a talk-option key may be is the core's rule (controller.core.settings.TalkOptions): TalkOptions runs it
TalkKey = Annotated[str, _Quoted]
IpAddress = Annotated[str, _Quoted, AfterValidator(_ip_address)]
SipUri = Annotated[str, _Quoted, AfterValidator(_sip_uri)]
Domain = Annotated[str, _Quoted, AfterValidator(_domain)]
Port = Annotated[int, Field(ge=1, le=65535)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a path against the configuration's base directory and require an existing regular file."""
    if value is None:
        return None
    base_dir = (info.context or {}).get("base_dir") or Path.cwd()
    path = Path(base_dir, value.expanduser())
    path = Path(os.path.abspath(path))
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    return path


def _raise_problems(problems: Sequence[Problem]) -> None:
    """Report several problems at paths below the validated model (relative paths)."""
    if problems:
        summary = "; ".join(f"{'.'.join(map(str, path)) or '.'}: {message}" for path, message in problems)
        raise PydanticCustomError(_PROBLEMS, "{summary}", {"summary": summary, "problems": list(problems)})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# node


class Endpoint(_Model):
    address: IpAddress = "127.0.0.1"
    port: Port


class Rtpengine(_Model):
    ng_address: IpAddress = "127.0.0.1"
    ng_port: Port = 22222
    media_address: IpAddress = "127.0.0.1"
    port_min: Port = 30000
    port_max: Port = 30999
    # rtpengine persists its calls in Redis, so a restarted rtpengine keeps every call's media
    # (docs/RELIABILITY.md); it costs rtpengine and Redis CPU per call (docs/BENCHMARKS.md)
    persist_calls: bool = True

    @model_validator(mode="after")
    def _check_range(self) -> Rtpengine:
        size = self.port_max - self.port_min + 1
        if self.port_min >= self.port_max:
            _raise_problems([(("port_max",), f"must be greater than port_min ({self.port_min})")])
        if size < 4 or size % 2:
            # rtpengine allocates RTP/RTCP port pairs; an odd or tiny range wastes or lacks pairs.
            message = f"range {self.port_min}..{self.port_max} has {size} ports; need an even number >= 4"
            _raise_problems([(("port_max",), message)])
        return self


class Redis(_Model):
    address: IpAddress = "127.0.0.1"
    port: Port = 6379
    # rtpengine persists its calls in the database after this one (Redis has 16 by default: 0..15)
    db: int = Field(default=0, ge=0, le=14)


class Secrets(_Model):
    """Credentials of the node's control interfaces (docs/SECURITY.md says how to rotate each). The
    file holding them must not be readable by others. None: not set, and the service refuses to start."""

    kamailio_rpc: NonEmptyStr | None = None  # the controller's HTTP basic password at Kamailio's /RPC
    redis: NonEmptyStr | None = None  # requirepass of the node's Redis
    metrics: NonEmptyStr | None = None  # bearer token for the controller's /metrics

    def missing(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is None]


#: Control interfaces: only the node's own processes talk to them, so they listen on loopback or a
#: private control network unless the node says otherwise.
CONTROL_ENDPOINTS = (("kamailio_rpc", "address"), ("controller", "address"), ("rtpengine", "ng_address"),
                     ("dtmf", "address"), ("redis", "address"))


class Node(_Model):
    name: Name = "local"
    sip: Endpoint = Endpoint(port=5060)
    kamailio_rpc: Endpoint = Endpoint(port=5071)
    controller: Endpoint = Endpoint(port=8090)
    rtpengine: Rtpengine = Rtpengine()
    dtmf: Endpoint = Endpoint(port=5999)
    redis: Redis = Redis()
    call_keys_ttl_after_end_s: int = Field(default=60, ge=1, le=86400)
    # Kamailio's dialog timeout and htable expiry and rtpengine's final-timeout are this value (wire.py)
    max_call_duration_s: int = Field(default=wire.MAX_CALL_DURATION_S, ge=1, le=7 * 86400)
    secrets: Secrets = Secrets()
    # a lab node may let an extension register and call without a password (check-config warns)
    lab_allow_extensions_without_password: bool = False
    # control interfaces on a wildcard or public address (check-config warns): off, refused
    allow_public_control: bool = False
    # the event log keeps this long (XADD MINID), and at most ~event_log_max entries
    event_log_retention_s: int = Field(default=7 * 86400, ge=60, le=366 * 86400)
    event_log_max: int = Field(default=1_000_000, ge=1000, le=100_000_000)

    @model_validator(mode="after")
    def _control_addresses(self) -> Node:
        if self.allow_public_control:
            return self
        problems: list[Problem] = []
        for section, field_name in CONTROL_ENDPOINTS:
            address = getattr(getattr(self, section), field_name)
            ip = ipaddress.ip_address(address)
            if ip.is_unspecified or not (ip.is_loopback or ip.is_private or ip.is_link_local):
                problems.append(((section, field_name), f"{address} is a wildcard or public address for a "
                                 "control interface; use loopback or a private control network "
                                 "(or set node.allow_public_control)"))
        _raise_problems(problems)
        return self

    @model_validator(mode="after")
    def _check_ports(self) -> Node:
        # All services run on one node: a shared port (or one inside the media range) fails at bind time.
        listening: list[tuple[tuple[str, str], int]] = [
            (("sip", "port"), self.sip.port),
            (("kamailio_rpc", "port"), self.kamailio_rpc.port),
            (("controller", "port"), self.controller.port),
            (("rtpengine", "ng_port"), self.rtpengine.ng_port),
            (("dtmf", "port"), self.dtmf.port),
            (("redis", "port"), self.redis.port),
        ]
        media = range(self.rtpengine.port_min, self.rtpengine.port_max + 1)
        media_text = f"{media.start}..{media.stop - 1}"
        problems: list[Problem] = []
        seen: dict[int, tuple[str, str]] = {}
        for path, port in listening:
            if port in seen:
                problems.append((path, f"port {port} is already used by node.{'.'.join(seen[port])}"))
            else:
                seen[port] = path
            if port in media:
                problems.append((path, f"port {port} is inside the rtpengine media range {media_text}"))
        _raise_problems(problems)
        return self


# ---------------------------------------------------------------------------------------------
# trunks


class Trunk(_Model):
    address: IpAddress
    port: Port = 5060
    match_port: bool = False
    transport: Literal["udp", "tcp"] = "udp"
    # The far end accepts REFER (RFC 3515): a tenant with `outside_transfers: refer` asks it to call an
    # outside target itself. A trunk without the flag is never sent a REFER.
    refer: bool = False

    @property
    def hostport(self) -> str:
        """``host:port`` for a SIP URI (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


# ---------------------------------------------------------------------------------------------
# tenants


class DidRoute(_Model):
    extension: ExtensionNumber | None = None
    department: Name | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DidRoute:
        if self.extension is None and self.department is None:
            _raise_problems([((), "must route to an extension or a department")])
        if self.extension is not None and self.department is not None:
            _raise_problems([(("department",), "give either extension or department, not both")])
        return self


class Extension(_Model):
    name: str | None = None
    contact: SipUri | None = None  # static contact; None means the phone must REGISTER
    password: NonEmptyStr | None = None  # digest password for REGISTER


class Department(_Model):
    number: ExtensionNumber
    members: list[ExtensionNumber] = Field(min_length=1)


# The state machine's defaults are the configuration's: one copy, in controller.core.settings.
_SETTINGS = Settings()
_FALLBACK = FallbackPolicy()
_CORE_TALK = _SETTINGS.talk_options
#: configuration name of each core TalkOptions field
_TALK_FIELDS = {"transfer": "transfer", "back": "return", "conference": "conference"}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _talk_field(message: str) -> str:
    """The configuration field a core TalkOptions error is about (the first core field it names)."""
    named = [(message.find(core), name) for core, name in _TALK_FIELDS.items() if core in message]
    return min(named)[1] if named else "transfer"


class TalkOptions(_Model):
    transfer: TalkKey = _CORE_TALK.transfer
    return_: TalkKey = Field(default=_CORE_TALK.back, alias="return")
    # `#` again after B answered: the three-way conference (the controller's own mixer); None: no key
    conference: TalkKey | None = _CORE_TALK.conference
    # after the transfer key: time to the first digit, pause that ends the number, wait for its route
    first_digit_timeout_ms: int = Field(default=_ms(_SETTINGS.first_digit_timeout_s), ge=1000, le=60000)
    interdigit_timeout_ms: int = Field(default=_ms(_SETTINGS.interdigit_timeout_s), ge=500, le=10000)
    resolve_timeout_ms: int = Field(default=_ms(_SETTINGS.resolve_timeout_s), ge=500, le=30000)
    max_digits: int = Field(default=_SETTINGS.max_number_length, ge=1, le=32)
    # The talk options never reach the other side. Other digits an employee presses (an IVR's menu):
    # "pass" re-plays them to the other party (rtpengine's DTMF injection, enabled at a conversation's
    # first such digit: it puts that call's audio through rtpengine's transcoding engine from then on,
    # docs/ARCHITECTURE.md); "absorb" keeps every digit on the PBX.
    other_digits: Literal["pass", "absorb"] = "pass" if _SETTINGS.pass_other_digits else "absorb"

    def core(self) -> CoreTalkOptions:
        """The state machine's talk options (its rules checked: the key alphabet, no prefixes)."""
        keys = {"transfer": self.transfer, "back": self.return_}
        if self.conference is not None:
            keys["conference"] = self.conference
        return CoreTalkOptions(**keys)

    @model_validator(mode="after")
    def _core_rules(self) -> TalkOptions:
        problems: list[Problem] = []
        if self.return_ == self.transfer:
            problems.append((("return",), f"must differ from transfer ({self.transfer!r})"))
        try:
            self.core()
        except ValueError as exc:  # the core's own rule, reported at the field it names
            problems.append(((_talk_field(str(exc)),), str(exc)))
        _raise_problems(problems)
        return self


class CallerId(_Model):
    policy: CallerIdPolicy = _SETTINGS.caller_id_policy


class Prompt(_Model):
    source: Literal["system", "file", "tts"] = "system"
    file: Path | None = None
    text: str | None = None
    voice: Literal["en", "ru"] = "en"

    resolve_file = field_validator("file")(_existing_file)

    @model_validator(mode="after")
    def _source_fields(self) -> Prompt:
        problems: list[Problem] = []
        if self.source == "file" and self.file is None:
            problems.append((("file",), "required when source is 'file'"))
        if self.source != "file" and self.file is not None:
            problems.append((("file",), f"only used with source: file (source is {self.source!r})"))
        if self.source == "tts" and not (self.text or "").strip():
            problems.append((("text",), "required (non-empty) when source is 'tts'"))
        if self.source != "tts" and self.text is not None:
            problems.append((("text",), f"only used with source: tts (source is {self.source!r})"))
        _raise_problems(problems)
        return self


class TransferRule(_Model):
    no_answer_timeout_s: int = Field(default=round(_SETTINGS.no_answer_timeout_s), ge=1, le=wire.MAX_RING_S)
    on_failure: FallbackRule = _FALLBACK.rule
    return_to_origin: bool = _FALLBACK.return_to_origin
    warn_transferor: bool = _FALLBACK.warn_transferor_prompt is not None
    warn_client: bool = _FALLBACK.warn_client_prompt is not None
    apology: Prompt = Prompt()
    voicemail_greeting: Prompt = Prompt()
    voicemail_max_s: int = Field(default=round(_FALLBACK.voicemail_max_s), ge=5, le=3600)
    # a prompt's end is awaited at most this long (a lost notification never strands a caller): longer
    # than the tenant's longest announcement
    prompt_guard_ms: int = Field(default=_ms(_SETTINGS.prompt_guard_s), ge=5000, le=3_600_000)

    @model_validator(mode="after")
    def _return_options(self) -> TransferRule:
        returns = FallbackRule.RETURN_TO_TRANSFEROR
        message = f"only allowed with on_failure: {returns.value} (on_failure is {self.on_failure.value!r})"
        problems: list[Problem] = [
            ((field,), message)
            for field in ("return_to_origin", "warn_transferor", "warn_client")
            if getattr(self, field) and self.on_failure is not returns
        ]
        _raise_problems(problems)
        return self


class TransferRules(_Model):
    incoming: TransferRule = TransferRule()
    outgoing: TransferRule = TransferRule()

    def for_direction(self, direction: Direction | str) -> TransferRule:
        return self.incoming if Direction(direction) is Direction.INCOMING else self.outgoing


class Tenant(_Model):
    name: str | None = None
    domain: Domain
    company_number: PhoneNumber
    outbound_trunk: Name
    dids: dict[PhoneNumber, DidRoute] = {}
    extensions: dict[ExtensionNumber, Extension] = {}
    departments: dict[Name, Department] = {}
    sip_aliases: dict[ExtensionNumber, SipUri] = {}
    # Short numbers that leave through the trunk although they are as long as the tenant's own
    # numbers (an unassigned short number is otherwise "unknown", never dialled out)
    outside_short_numbers: list[ExtensionNumber] = ["112"]
    numbering_plan: NumberingPlan = NumberingPlan()
    talk_options: TalkOptions = TalkOptions()
    caller_id: CallerId = CallerId()
    hold_music: Path | None = None  # None: the system melody
    transfer_rules: TransferRules = TransferRules()
    # A transfer to an outside number: "take_over" (the PBX calls B and connects the client) or "refer"
    # (the client's trunk, if marked `refer: true`, is asked by REFER to call B itself; the PBX follows
    # its NOTIFYs and applies the no-answer time and the fallback rule; docs/ARCHITECTURE.md "REFER")
    outside_transfers: Literal["take_over", "refer"] = "take_over"

    resolve_hold_music = field_validator("hold_music")(_existing_file)

    @model_validator(mode="after")
    def _references(self) -> Tenant:
        problems: list[Problem] = []
        for did, route in self.dids.items():
            if route.extension is not None and route.extension not in self.extensions:
                problems.append((("dids", did, "extension"), f"unknown extension {route.extension!r}"))
            if route.department is not None and route.department not in self.departments:
                problems.append((("dids", did, "department"), f"unknown department {route.department!r}"))
        for dept_id, dept in self.departments.items():
            seen: set[str] = set()
            for index, member in enumerate(dept.members):
                where = ("departments", dept_id, "members", index)
                if member not in self.extensions:
                    problems.append((where, f"unknown extension {member!r}"))
                elif member in seen:
                    problems.append((where, f"{member!r} is listed twice"))
                seen.add(member)
        # One dialled short number must mean one thing.
        owner: dict[str, str] = {number: f"extensions.{number}" for number in self.extensions}
        numbered: list[tuple[tuple[str | int, ...], str]] = [
            (("departments", dept_id, "number"), dept.number) for dept_id, dept in self.departments.items()
        ]
        numbered += [(("sip_aliases", number), number) for number in self.sip_aliases]
        numbered += [(("outside_short_numbers", i), number) for i, number in enumerate(self.outside_short_numbers)]
        for path, number in numbered:
            if number in owner:
                problems.append((path, f"number {number!r} is already used by {owner[number]}"))
            else:
                owner[number] = ".".join(map(str, path[:-1] if path[-1] == "number" else path))
        _raise_problems(problems)
        return self


# ---------------------------------------------------------------------------------------------
# the whole configuration and its lookups


class DidMatch(NamedTuple):
    did: str  # the DID as written in the configuration
    tenant_id: str
    tenant: Tenant
    route: DidRoute


class Config(_Model):
    node: Node = Node()
    trunks: dict[Name, Trunk] = {}
    tenants: dict[Name, Tenant] = {}

    _dids: dict[str, DidMatch] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_check_and_index(self) -> Config:
        problems: list[Problem] = []
        dids: dict[str, DidMatch] = {}
        domains: dict[str, tuple[str, Tenant]] = {}
        trunks_by_ip: dict[str, list[tuple[str, Trunk]]] = {}
        for tenant_id, tenant in self.tenants.items():
            if tenant.outbound_trunk not in self.trunks:
                known = ", ".join(repr(name) for name in self.trunks) or "none configured"
                message = f"unknown trunk {tenant.outbound_trunk!r} (trunks: {known})"
                problems.append((("tenants", tenant_id, "outbound_trunk"), message))
            if tenant.domain in domains:
                other = domains[tenant.domain][0]
                problems.append((("tenants", tenant_id, "domain"), f"already used by tenants.{other}.domain"))
            else:
                domains[tenant.domain] = (tenant_id, tenant)
            if not self.node.lab_allow_extensions_without_password:
                for number, extension in tenant.extensions.items():
                    if extension.password is None:
                        problems.append((("tenants", tenant_id, "extensions", number, "password"),
                                         "required: every phone authenticates its REGISTER and INVITE (a lab "
                                         "node may set node.lab_allow_extensions_without_password)"))
            for did, route in tenant.dids.items():
                first = dids.get(did_key(did))
                if first is not None:
                    message = f"already used by tenants.{first.tenant_id}.dids.{first.did}"
                    problems.append((("tenants", tenant_id, "dids", did), message))
                else:
                    dids[did_key(did)] = DidMatch(did, tenant_id, tenant, route)
        for name, trunk in self.trunks.items():
            for other_name, other in trunks_by_ip.get(trunk.address, []):
                # Two trunks on one IP can only be told apart by their source port.
                if not (trunk.match_port and other.match_port and trunk.port != other.port):
                    problems.append(
                        (
                            ("trunks", name, "address"),
                            f"same address as trunks.{other_name}; "
                            "both need match_port: true and different ports",
                        )
                    )
            trunks_by_ip.setdefault(trunk.address, []).append((name, trunk))
        _raise_problems(problems)
        self._dids = dids
        return self

    def lookup_did(self, number: str) -> DidMatch | None:
        """The DID ``number`` (with or without its leading '+'), with its tenant and route."""
        return self._dids.get(did_key(number))

    def warnings(self) -> list[str]:
        """What a valid configuration still does that a carrier's security engineer should know."""
        node = self.node
        found = []
        if node.lab_allow_extensions_without_password:
            open_ext = [f"{t}.{n}" for t, tenant in self.tenants.items()
                        for n, ext in tenant.extensions.items() if ext.password is None]
            found.append("node.lab_allow_extensions_without_password: extensions without a password "
                         f"register and call unauthenticated ({', '.join(open_ext) or 'none now'})")
        if node.allow_public_control:
            found.append("node.allow_public_control: control interfaces may listen on public addresses")
        if node.secrets.missing():
            found.append(f"node.secrets: {', '.join(node.secrets.missing())} not set; `xferctl serve` refuses "
                         "to start without them (`xferctl stack` generates its own)")
        return found


# ---------------------------------------------------------------------------------------------
# loading


def _problem_message(error: Any) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        return "unknown key (not allowed here)"
    if kind == "missing":
        return "required"
    given = error.get("input")
    if isinstance(given, str | int | float | bool) or given is None:
        return f"{error['msg']} (got {given!r})"
    return error["msg"]


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        if item["type"] == _PROBLEMS:
            sub: Iterable[Problem] = item["ctx"]["problems"]
            problems += [(".".join(map(str, loc + path)), message) for path, message in sub]
        elif loc and loc[-1] == "[key]":
            problems.append((".".join(map(str, loc[:-1])), f"invalid key: {_problem_message(item)}"))
        else:
            problems.append((".".join(map(str, loc)), _problem_message(item)))
    return problems


def _config_error(problems: Sequence[tuple[str, str]], source: str | None) -> ConfigError:
    prefix = f"{source}: " if source else ""
    lines = [f"{prefix}{path or '(top level)'}: {message}" for path, message in problems]
    return ConfigError("\n".join(lines), problems)


def _validate(data: Any, base_dir: Path, source: str | None) -> Config:
    if not isinstance(data, dict):
        raise _config_error([("", f"must be a mapping (got {type(data).__name__})")], source)
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(_problems(exc), source) from None


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate an already-parsed configuration; relative file paths resolve against ``base_dir``."""
    return _validate(data, Path(base_dir) if base_dir is not None else Path.cwd(), None)


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: PyYAML would silently keep the last one."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # '<<' merges may be overridden by explicit keys
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if first != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"duplicate key {key!r} (first on line {first + 1})",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML configuration file; relative paths in it resolve against its directory."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found", [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}", [("", f"cannot read: {exc}")]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        message = f"{where}YAML syntax error: {exc.problem or exc.context}"
        raise ConfigError(f"{source}: {message}", [("", message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML error: {exc}", [("", f"YAML error: {exc}")]) from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty", [("", "the file is empty")])
    return _validate(data, Path(os.path.abspath(file)).parent, source)
