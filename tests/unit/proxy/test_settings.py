"""Kamailio's Python settings file: what the stack writes and what the Ansible role renders are the
layout ProxySettings reads (Redis and its password, the record lifetimes of the configuration)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import Node
from controller.proxy.handler import ENVIRONMENT, KamailioRouting, ProxySettings
from controller.proxy.records import RecordLimits
from controller.wire import ANSIBLE_VARS_FILE
from tests.unit.proxy.fakes import FakePv

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "ansible" / "roles" / "xfer_node"
EXPRESSION = re.compile(r"\{\{\s*xfer_node\.([\w.]+)\s*\|\s*(int|to_json)\s*\}\}")


def render(template: str, node: dict[str, Any]) -> str:
    """The role's template with its only kind of expression, `{{ xfer_node.<path> | int|to_json }}`."""
    def value(match: re.Match[str]) -> str:
        found: Any = node
        for part in match.group(1).split("."):
            found = found[part]
        return str(int(found)) if match.group(2) == "int" else json.dumps(found)

    body = re.sub(r"\{#.*?#\}", "", template, flags=re.S)
    rendered = EXPRESSION.sub(value, body)
    assert "{{" not in rendered and "{%" not in rendered, rendered
    return rendered


def test_the_role_s_settings_file_is_what_the_stack_writes(tmp_path: Path) -> None:
    defaults = yaml.safe_load((ROOT / ANSIBLE_VARS_FILE).read_text())["xfer_node_defaults"]
    node = defaults | {"max_call_duration_s": 5400, "secrets": {"redis": 'p"w'}}
    path = tmp_path / "proxy.json"
    path.write_text(render((ROLE / "templates" / "proxy-settings.json.j2").read_text(), node))
    settings = ProxySettings.from_file(path)
    n = Node.model_validate({"max_call_duration_s": 5400})
    assert settings == ProxySettings(n.redis.address, n.redis.port, n.redis.db, 'p"w', RecordLimits(
        max_call_s=5400, ttl_after_end_s=n.call_keys_ttl_after_end_s, events_maxlen=n.event_log_max,
        events_retention_s=n.event_log_retention_s))
    # every key it writes is one to_json() writes (to_json has inbound_maxlen too: the role keeps its default)
    written, layout = json.loads(path.read_text()), json.loads(settings.to_json())
    assert set(written) == set(layout) and all(set(written[k]) <= set(layout[k]) for k in written)


def test_the_role_installs_the_script_and_gives_kamailio_the_settings_and_the_path() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    copied = {task["ansible.builtin.copy"]["dest"]: task["ansible.builtin.copy"] for task in tasks
              if "ansible.builtin.copy" in task and "src" in task["ansible.builtin.copy"]}
    assert copied["{{ xfer_etc }}/kamailio/xfer_routing.py"]["src"] == "{{ xfer_src }}/kamailio/xfer_routing.py"
    [settings] = [t["ansible.builtin.template"] for t in tasks if "ansible.builtin.template" in t
                  and t["ansible.builtin.template"]["src"] == "proxy-settings.json.j2"]
    assert settings["mode"] == "0600"
    defines = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["xfer_kamailio_defines"]
    assert defines["PROXY_SCRIPT"] == '"{{ xfer_etc }}/kamailio/xfer_routing.py"'
    unit = (ROLE / "templates" / "xfer-kamailio.service.j2").read_text()
    assert f'"{ENVIRONMENT}={settings["dest"]}"' in unit
    assert '"PYTHONPATH={{ xfer_proxy_pythonpath.stdout }}"' in unit


def test_the_settings_file_round_trips_and_names_the_handler_s_redis(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ProxySettings("10.0.0.5", 6380, 2, None, RecordLimits(max_call_s=60, ttl_after_end_s=5,
                                                                      inbound_maxlen=10))
    path = tmp_path / "proxy.json"
    path.write_text(settings.to_json())
    assert ProxySettings.from_file(path) == settings
    monkeypatch.setenv(ENVIRONMENT, str(path))
    assert KamailioRouting.from_environment(FakePv(), lambda call_id: False).settings == settings
