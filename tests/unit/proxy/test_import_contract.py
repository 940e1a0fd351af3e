"""What Kamailio's Python imports: the standard library, redis-py, KSR and the few controller modules
the routing needs (controller/proxy/__init__.py). No pydantic, no aiohttp, no yaml: Kamailio's
interpreter is the system python3, with only the controller package and redis-py on its path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.unit.core.test_import_contract import foreign_imports

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = Path("/usr/bin/python3")

#: What kamailio/xfer_routing.py loads, directly or not (the roots of the walk).
PROXY = sorted(f"controller/proxy/{p.name}" for p in (ROOT / "controller" / "proxy").glob("*.py"))
ROOTS = ("kamailio/xfer_routing.py", *PROXY,
         "controller/routing/decision.py", "controller/routing/numbering.py", "controller/routing/table.py",
         "controller/adapters/redis_schema.py", "controller/wire.py", "controller/codecs/jsonrpc.py",
         "controller/errors.py")
#: The controller modules they may reach besides themselves: controller.core is stdlib-only itself
#: (tests/unit/core/test_import_contract.py), and a package's __init__ runs before its modules.
ALSO_ALLOWED = ("controller.core", "controller.core.*", "controller", "controller.proxy", "controller.routing",
                "controller.adapters", "controller.codecs")
#: Imports inside a function that Kamailio never calls (the Ansible vars generator of wire.py).
TOOLING = {("controller/wire.py", "controller.config"), ("controller/wire.py", "controller.credentials"),
           ("controller/wire.py", "yaml")}
#: Never on Kamailio's path, or too heavy for it: the controller's service dependencies.
FORBIDDEN = ("pydantic", "aiohttp", "yaml")


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> str | None:
    """The repository file of a controller module, or None."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return str(candidate.relative_to(ROOT))
    return None


def imported_names(source: str, path: str = "") -> list[tuple[str, bool]]:
    """Every module ``source`` (the file at ``path``) imports (``from X import y`` is X, and X.y too when
    that is a module), each with whether the import is inside a function (runs only when it is called)."""
    tree = ast.parse(source)
    package = module_name(path).split(".") if path.endswith("__init__.py") else module_name(path).split(".")[:-1]
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(inner) for inner in ast.walk(node) if inner is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in in_function) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package (or a parent of it)
                base = package[:len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, id(node) in in_function))
            found += [(f"{module}.{alias.name}", id(node) in in_function) for alias in node.names
                      if module_path(f"{module}.{alias.name}")]
    return found


def packages_of(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def closure() -> dict[str, list[tuple[str, bool]]]:
    """Repository file -> what it imports, for the roots and every controller module they reach."""
    seen: dict[str, list[tuple[str, bool]]] = {}
    todo = [*ROOTS, *(p for root in ROOTS for package in packages_of(module_name(root))
                      if (p := module_path(package)))]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = imported_names((ROOT / path).read_text(encoding="utf-8"), path)
        for name, lazy in seen[path]:
            if (path, name) in TOOLING:
                assert lazy, f"{path} imports {name} at import time"
                continue
            if name.split(".")[0] == "controller":
                todo += [p for n in (*packages_of(name), name) if (p := module_path(n))]
    return seen


def allowed_controller_module(name: str) -> bool:
    own = {module_name(root) for root in ROOTS}
    return name in own or any(name == a or (a.endswith(".*") and name.startswith(a[:-1])) for a in ALSO_ALLOWED)


def test_the_walk_reaches_the_routing_and_the_records() -> None:
    reached = {module_name(path) for path in closure()}
    assert {"controller.proxy.handler", "controller.proxy.records", "controller.routing.decision",
            "controller.adapters.redis_schema", "controller.core.snapshot", "controller"} <= reached


@pytest.mark.parametrize("path", sorted(closure()), ids=str)
def test_kamailio_s_python_imports_only_the_stdlib_redis_and_the_routing_modules(path: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    outside = {name for name in foreign_imports(source, package="controller")
               if (path, name) not in TOOLING and name.split(".")[0] != "redis"}
    if path == "kamailio/xfer_routing.py":
        outside.discard("KSR")  # Kamailio's own module, only in the script it loads
    assert outside == set()
    controller = {name for name, _lazy in imported_names(source, path)
                  if name.split(".")[0] == "controller" and (path, name) not in TOOLING}
    assert {name for name in controller if not allowed_controller_module(name)} == set()


def test_the_checker_catches_a_service_import() -> None:
    assert not allowed_controller_module("controller.config")
    assert not allowed_controller_module("controller.adapters.redis_store")
    assert not allowed_controller_module("controller.routing.compiler")
    assert allowed_controller_module("controller.core.conversation")
    lazy = "def f():\n    from controller.config import Node\n"
    assert imported_names(lazy, "controller/x.py") == [("controller.config", True)]
    relative = "from .states import State\nfrom . import media\n"
    assert imported_names(relative, "controller/core/x.py") == [
        ("controller.core.states", False), ("controller.core", False), ("controller.core.media", False)]


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system python3")
def test_the_system_python3_imports_the_handler_without_the_service_s_packages() -> None:
    """As Kamailio's app_python3 does: the system interpreter, with only the checkout and redis-py's
    directory on its path (LocalStack.kamailio_env), no user site, no environment of this run."""
    paths = dict.fromkeys([str(ROOT), str(Path(redis.__file__).resolve().parents[1])])
    probe = ("import sys; sys.path[:0] = sys.argv[1:]; import controller.proxy.handler, redis; "
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    # -I ignores PYTHONPATH (and the user site): the path is put in front of sys.path as PYTHONPATH would be
    done = subprocess.run([str(SYSTEM_PYTHON), "-I", "-c", probe, *paths], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert {"controller", "redis"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
    assert sys.version_info[:2] >= (3, 11)  # what the controller's code is written for
