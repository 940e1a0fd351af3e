"""One copy of every name and limit shared with Kamailio, rtpengine and Redis: controller/wire.py.

kamailio.cfg uses WIRE_* names that only the rendered main file defines (`#!substdef`, from
wire.kamailio_wire_defines); Python imports the constants; the Ansible role's vars are generated from
the same module. These tests hold all of it together.
"""

from __future__ import annotations

import ast
import re
import shutil
import string
import subprocess
from pathlib import Path

import pytest
import yaml

from controller import wire
from controller.config import Node
from controller.devstack.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = ROOT / "kamailio" / "kamailio.cfg"
RTPENGINE_TMPL = ROOT / "rtpengine" / "rtpengine.conf.tmpl"
EXAMPLE = ROOT / "config" / "example.yaml"
ROLE = ROOT / "ansible" / "roles" / "xfer_node"
WIRE_NAME = re.compile(r"\bWIRE_[A-Z_]+\b")


def _script_lines() -> list[str]:
    """kamailio.cfg without its comments (preprocessor directives kept)."""
    lines = KAMAILIO_CFG.read_text().splitlines()
    return [line for line in lines if not line.lstrip().startswith("#") or line.lstrip().startswith("#!")]


def _stack(tmp_path: Path, **node: object) -> LocalStack:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["node"] = data.get("node", {}) | node
    (tmp_path / "run").mkdir(exist_ok=True)
    return LocalStack(data, tmp_path / "run", StackOptions())


# -- kamailio.cfg ------------------------------------------------------------------------------

def test_every_wire_name_kamailio_cfg_uses_is_provided_and_every_one_provided_is_used() -> None:
    used = set(WIRE_NAME.findall("\n".join(_script_lines())))
    assert used == set(wire.kamailio_wire_defines(wire.MAX_CALL_DURATION_S))


def test_no_wire_name_is_part_of_another() -> None:
    """A substdef replaces its name wherever it occurs: WIRE_X inside WIRE_XY would break WIRE_XY."""
    names = list(wire.kamailio_wire_defines(1))
    assert not [(a, b) for a in names for b in names if a != b and a in b]


def test_kamailio_cfg_holds_no_copy_of_a_wire_value() -> None:
    script = "\n".join(_script_lines())
    assert '"xfer:' not in script and "xfer:" not in script
    assert str(wire.MAX_CALL_DURATION_S) not in script
    assert "xfer=>" not in script  # the htable is WIRE_HTABLE
    for prefix in (wire.LEG_PREFIX, wire.TRANSFEROR_PREFIX, wire.GONE_PREFIX, wire.BRANCH_PREFIX):
        assert not re.search(rf"(=>|\"){prefix}", script), prefix
    assert wire.LEG_HEADER not in script and wire.HEADER_PREFIX not in script
    assert str(wire.ORIGINATE_FR_INV_MS) not in script


def test_kamailio_cfg_has_no_default_for_a_wire_name() -> None:
    defined = re.findall(r"#!(?:define|substdef)\s+\"?!?(\w+)", KAMAILIO_CFG.read_text())
    assert not [name for name in defined if name.startswith("WIRE_")]


def test_a_wire_value_that_would_break_a_substdef_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "HTABLE", "x!y")
    with pytest.raises(ValueError, match="WIRE_HTABLE"):
        wire.kamailio_wire_defines(10)


# -- Python ------------------------------------------------------------------------------------

def _xfer_literals(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("xfer:"):
            found.append(node.value)
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and str(node.values[0].value).startswith("xfer:"):
            found.append(str(node.values[0].value))
    # a docstring or comment describing the schema is not a literal the code uses
    return [text for text in found if "\n" not in text]


def _python_files() -> list[Path]:
    files = [*ROOT.glob("controller/**/*.py"), *ROOT.glob("benchmarks/**/*.py"), *ROOT.glob("tests/unit/**/*.py")]
    return sorted(f for f in files if f not in (ROOT / "controller" / "wire.py", Path(__file__).resolve()))


def test_no_redis_key_is_spelled_outside_wire_py() -> None:
    offenders = {str(f.relative_to(ROOT)): _xfer_literals(f) for f in _python_files()}
    offenders = {path: found for path, found in offenders.items() if found}
    assert offenders == {}


def test_the_adapters_use_wire_py() -> None:
    from controller.adapters import kamailio_sip, redis_limits, redis_store

    assert (redis_store.CONV_KEY, redis_store.INBOUND_STREAM, redis_store.REGISTRAR_KEY) == (
        wire.CONV_KEY, wire.INBOUND_STREAM, wire.REGISTRAR_KEY)
    assert (redis_limits.LIVE_KEY, redis_limits.MINUTE_KEY) == (wire.LIMIT_LIVE_KEY, wire.LIMIT_MINUTE_KEY)
    request = kamailio_sip.build_originate(leg_id="c.t1.b1", target_user="101", domain="acme.test",
                                           caller_id="100", proxy="127.0.0.1:5060", sdp="v=0\r\n")
    assert f"Contact: <sip:{wire.LEG_CONTACT_USER}@127.0.0.1:5060>" in request.headers
    assert f"{wire.LEG_HEADER}: c.t1.b1" in request.headers


def test_the_configuration_limits_are_wire_py_s() -> None:
    from controller.config import TransferRule

    assert Node().max_call_duration_s == wire.MAX_CALL_DURATION_S
    assert TransferRule.model_fields["no_answer_timeout_s"].metadata[-1].le == wire.MAX_RING_S


# -- the local stack ---------------------------------------------------------------------------

def test_the_stack_s_main_file_defines_every_wire_name_from_the_configuration(tmp_path: Path) -> None:
    stack = _stack(tmp_path, max_call_duration_s=7200)
    text = stack.kamailio_secrets_cfg().read_text()
    lines = wire.substdef_lines(wire.kamailio_wire_defines(7200))
    assert all(line in text.splitlines() for line in lines)
    assert '#!substdef "!WIRE_MAX_CALL_S!7200!g"' in text
    assert text.index(lines[-1]) < text.index("include_file")
    assert "EVENT_STREAM" not in " ".join(stack.kamailio_defines())


def test_the_stack_s_defines_are_names_kamailio_cfg_knows(tmp_path: Path) -> None:
    known = set(re.findall(r"#!ifn?def (\w+)", KAMAILIO_CFG.read_text()))
    argv = _stack(tmp_path).kamailio_defines()
    given = {arg.split("=", 1)[0] for arg in argv[1::2]}
    assert given <= known


def test_rtpengine_final_timeout_is_the_configuration_s() -> None:
    template = string.Template(RTPENGINE_TMPL.read_text())
    assert "final-timeout = $max_call_duration_s" in template.template
    names = {m.group("named") for m in template.pattern.finditer(template.template) if m.group("named")}
    rendered = template.substitute({name: "x" for name in names} | {"max_call_duration_s": 7200})
    assert "final-timeout = 7200" in rendered


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed")
@pytest.mark.parametrize("with_controller", [True, False])
def test_kamailio_accepts_the_rendered_configuration(tmp_path: Path, with_controller: bool) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["node"] = {"max_call_duration_s": 3600}
    (tmp_path / "run").mkdir()
    stack = LocalStack(data, tmp_path / "run", StackOptions(with_controller=with_controller))
    argv = ["kamailio", "-c", "-f", str(stack.kamailio_secrets_cfg()), *stack.kamailio_defines()]
    checked = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr[-2000:]


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed")
def test_kamailio_cfg_alone_refuses_to_start_without_the_wire_names() -> None:
    checked = subprocess.run(["kamailio", "-c", "-f", str(KAMAILIO_CFG)], capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0 and "MISSING_WIRE_NAMES" in checked.stderr


# -- the Ansible role --------------------------------------------------------------------------

def test_the_role_s_wire_vars_are_generated_from_wire_py() -> None:
    assert (ROOT / wire.ANSIBLE_VARS_FILE).read_text() == wire.ansible_vars_text(), (
        "regenerate: python -m controller.wire > " + wire.ANSIBLE_VARS_FILE)
    generated = yaml.safe_load((ROOT / wire.ANSIBLE_VARS_FILE).read_text())
    assert generated["xfer_node_defaults"]["max_call_duration_s"] == Node().max_call_duration_s


def test_the_role_s_main_file_renders_the_same_substdefs_as_the_stack(tmp_path: Path) -> None:
    template = (ROLE / "templates" / "kamailio-main.cfg.j2").read_text()
    generated = yaml.safe_load((ROOT / wire.ANSIBLE_VARS_FILE).read_text())
    loop = ('{% for name, value in xfer_wire_names.items() %}\n#!substdef "!{{ name }}!{{ value }}!g"\n'
            "{% endfor %}\n")
    assert loop in template
    # the rest of the template's substdefs, each a node value of the configuration
    node_values = dict(re.findall(r'#!substdef "!(\w+)!\{\{ xfer_node\.(\w+) \}\}!g"', template))
    assert node_values == {"WIRE_MAX_CALL_S": "max_call_duration_s"}
    node = generated["xfer_node_defaults"] | {"max_call_duration_s": 5400}
    rendered = wire.substdef_lines(generated["xfer_wire_names"]) + [
        f'#!substdef "!{name}!{node[field]}!g"' for name, field in node_values.items()]
    assert sorted(rendered) == sorted(wire.substdef_lines(wire.kamailio_wire_defines(5400)))
    # and the secrets the stack's main file defines
    stack_main = _stack(tmp_path).kamailio_secrets_cfg().read_text()
    assert re.findall(r"#!define (\w+)", template) == re.findall(r"#!define (\w+)", stack_main)


def test_the_role_passes_the_stack_s_defines_and_fills_the_rtpengine_template(tmp_path: Path) -> None:
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    argv = _stack(tmp_path).kamailio_defines()
    stack_names = {arg.split("=", 1)[0] for arg in argv[1::2]} - {"BASELINE_HOSTPORT", "WITH_CONTROLLER"}
    assert set(role_vars["xfer_kamailio_defines"]) == stack_names
    template = string.Template(RTPENGINE_TMPL.read_text())
    names = {m.group("named") for m in template.pattern.finditer(template.template) if m.group("named")}
    assert set(role_vars["xfer_rtpengine_values"]) == names
    assert role_vars["xfer_rtpengine_values"]["max_call_duration_s"] == "{{ xfer_node.max_call_duration_s }}"


def test_rtpengine_persists_calls_in_its_own_database_unless_switched_off(tmp_path: Path) -> None:
    stack = _stack(tmp_path, redis={"address": "127.0.0.1", "port": 6380, "db": 3})
    assert stack.rtpengine_persistence() == "redis = 127.0.0.1:6380/4"  # never the node's own database
    off = _stack(tmp_path, rtpengine={"persist_calls": False})
    assert off.rtpengine_persistence().startswith("#")
    baseline = LocalStack(yaml.safe_load(EXAMPLE.read_text()), tmp_path / "run", StackOptions(with_controller=False))
    assert baseline.rtpengine_persistence().startswith("#")  # the plain baseline: a bare rtpengine


def test_the_role_s_controller_socket_is_the_dtmf_socket_the_controller_takes_over() -> None:
    """systemd holds the DTMF socket across controller restarts (controller/adapters/listen_fds.py): the
    unit listens where rtpengine sends (node.dtmf) under the name the controller asks for."""
    socket_unit = (ROLE / "templates" / "xfer-controller.socket.j2").read_text()
    assert "ListenDatagram={{ xfer_node.dtmf.address }}:{{ xfer_node.dtmf.port }}" in socket_unit
    assert f"FileDescriptorName={wire.DTMF_SOCKET_NAME}\n" in socket_unit
    service_unit = (ROLE / "templates" / "xfer-controller.service.j2").read_text()
    assert "Sockets=xfer-controller.socket" in service_unit and "xferctl serve" in service_unit
    tasks = (ROLE / "tasks" / "main.yml").read_text()
    assert "loop: [xfer-controller.socket, xfer-controller.service]" in tasks
