"""The node's control-interface credentials in the forms each peer needs (pure; docs/SECURITY.md).

Kamailio's /RPC uses HTTP basic authentication (RFC 7617) with a fixed user name and the node's secret;
Redis its requirepass; /metrics a bearer token. (Kamailio does not call the controller: it reads the
routing table from Redis and writes call records there, with the Redis password.) Phones' digest passwords reach
Kamailio only as HA1 (RFC 2617 3.2.2.2: md5(user:realm:password), the realm being the tenant's domain).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from typing import Any

from controller.config import Node, Secrets

KAMAILIO_RPC_USER = "controller"  # who calls Kamailio's /RPC


def new_secrets() -> dict[str, str]:
    """Fresh random credentials for every control interface (a local stack's, or a first deployment's)."""
    return {name: _secrets.token_urlsafe(24) for name in Secrets.model_fields}


def basic_authorization(user: str, password: str) -> str:
    """The Authorization header value of HTTP basic authentication."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented credential (header value) with the expected one."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # RFC 2617 3.2.2.2


def redis_kwargs(node: Node) -> dict[str, Any]:
    """Connection arguments of the node's Redis, with its password."""
    r = node.redis
    return {"host": r.address, "port": r.port, "db": r.db, "password": node.secrets.redis}


def kamailio_rpc_auth(node: Node) -> tuple[str, str]:
    assert node.secrets.kamailio_rpc is not None, "node.secrets.kamailio_rpc is not set"
    return KAMAILIO_RPC_USER, node.secrets.kamailio_rpc
