"""Secure by default in the configuration: every phone has a password, control interfaces stay off
public addresses, secrets are required to serve, and what reaches Kamailio is a hash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import CONTROL_ENDPOINTS, ConfigError, parse_config
from controller.credentials import basic_authorization, ha1, matches, new_secrets, redis_kwargs
from controller.publish import registrar_entries

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return dict(info.value.problems)


def test_an_extension_without_a_password_is_refused_by_default() -> None:
    data = example()
    del data["tenants"]["acme"]["extensions"]["102"]["password"]
    found = problems(data)
    assert "password" in "".join(found) and "required" in found["tenants.acme.extensions.102.password"]


def test_a_lab_node_may_allow_it_and_check_config_warns() -> None:
    data = example()
    del data["tenants"]["acme"]["extensions"]["102"]["password"]
    data["node"]["lab_allow_extensions_without_password"] = True
    config = parse_config(data)
    assert any("acme.102" in w and "unauthenticated" in w for w in config.warnings())


@pytest.mark.parametrize(("section", "field"), CONTROL_ENDPOINTS)
@pytest.mark.parametrize("address", ["0.0.0.0", "8.8.8.8", "::"])
def test_control_interfaces_refuse_wildcard_and_public_addresses(section: str, field: str, address: str) -> None:
    data = example()
    data["node"].setdefault(section, {})[field] = address
    found = problems(data)
    assert f"node.{section}.{field}" in found, found
    assert "public" in found[f"node.{section}.{field}"]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.7.1", "fd00::1"])
def test_loopback_and_private_control_addresses_are_fine(address: str) -> None:
    data = example()
    data["node"]["redis"]["address"] = address
    parse_config(data)


def test_public_control_only_when_the_node_says_so_and_then_with_a_warning() -> None:
    data = example()
    data["node"]["controller"]["address"] = "0.0.0.0"
    data["node"]["allow_public_control"] = True
    assert any("allow_public_control" in w for w in parse_config(data).warnings())


def test_missing_secrets_are_a_warning_for_check_config_and_an_error_for_serve(tmp_path: Path) -> None:
    assert any("node.secrets" in w for w in parse_config(example()).warnings())
    path = tmp_path / "node.yaml"
    path.write_text(EXAMPLE.read_text())
    served = subprocess.run([sys.executable, "-m", "controller.cli", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert served.returncode == 1 and "node.secrets.kamailio_rpc" in served.stderr


def test_check_config_warns_about_a_secrets_file_others_can_read(tmp_path: Path) -> None:
    data = example()
    data["node"]["secrets"] = new_secrets()
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o644)
    checked = subprocess.run([sys.executable, "-m", "controller.cli", "check-config", str(path)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "readable by others" in checked.stderr
    path.chmod(0o600)
    checked = subprocess.run([sys.executable, "-m", "controller.cli", "check-config", str(path)],
                             capture_output=True, text=True, timeout=30)
    assert "readable by others" not in checked.stderr


def test_kamailio_gets_the_ha1_never_the_password() -> None:
    config = parse_config(example())
    entries = registrar_entries(config)
    password = config.tenants["acme"].extensions["102"].password
    assert password and entries["102@acme.test"] == ha1("102", "acme.test", password)
    assert not [v for v in entries.values() if password in v]


def test_ha1_is_rfc_2617s() -> None:
    # RFC 2617 3.5: Mufasa / testrealm@host.com / Circle Of Life
    assert ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


def test_credentials_helpers() -> None:
    secrets = new_secrets()
    assert set(secrets) == {"kamailio_rpc", "redis", "metrics"}
    assert len(set(secrets.values())) == 3 and all(len(v) >= 24 for v in secrets.values())
    header = basic_authorization("kamailio", "s3cret")
    assert header == "Basic a2FtYWlsaW86czNjcmV0"
    assert matches(header, header) and not matches(None, header) and not matches(header[:-1], header)
    data = example()
    data["node"]["secrets"] = secrets
    assert redis_kwargs(parse_config(data).node)["password"] == secrets["redis"]
