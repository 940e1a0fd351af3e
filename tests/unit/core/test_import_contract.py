"""controller.core is pure: it imports nothing but the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import controller.core

CORE = Path(controller.core.__file__).parent
PACKAGE = "controller.core"


def foreign_imports(source: str, package: str = PACKAGE) -> list[str]:
    """Every module ``source`` imports that is neither the standard library nor ``package`` itself."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:
                continue  # relative: inside the package
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if name == package or name.startswith(package + "."):
                continue
            if top in sys.stdlib_module_names:
                continue
            found.append(name)
    return found


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_there_are_modules_to_check():
    names = {path.name for path in core_modules()}
    assert {"conversation.py", "transfer.py", "fallback.py", "media.py", "snapshot.py"} <= names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_core_imports_only_the_standard_library(path):
    assert foreign_imports(path.read_text(encoding="utf-8")) == []


def test_the_checker_finds_foreign_imports():
    bad = """
import json
import attr
from pydantic import BaseModel
from controller.service import Engine
from controller.core.states import Stimulus
from . import media
import controller.corex
def later():
    import redis.asyncio
"""
    assert foreign_imports(bad) == ["attr", "pydantic", "controller.service", "controller.corex", "redis.asyncio"]
