"""Where the product's shipped files are: one place, for a checkout and for an installed wheel.

The daemons' configuration stays at the top of the repository (`kamailio/`, `rtpengine/`, `config/`,
`docs/`, the SIPp scenarios in `tests/sipp/`): that is the product's layout. The wheel ships copies of
them as data files (`[tool.setuptools.data-files]` in pyproject.toml), which pip installs under the
environment's data directory, mirroring the repository's layout:

    <prefix>/share/xfer-controller/kamailio/kamailio.cfg
    <prefix>/share/xfer-controller/rtpengine/rtpengine.conf.tmpl
    <prefix>/share/xfer-controller/config/example.yaml
    <prefix>/share/xfer-controller/docs/ARCHITECTURE.md, SECURITY.md
    <prefix>/share/xfer-controller/tests/sipp/*.xml

`ROOT` is the checkout when this module runs from one (the repository's own files, edits take effect at
once), otherwise that installed directory. It is found through the distribution's RECORD
(importlib.metadata), so any install scheme works (venv, --user, --prefix), and else through the
interpreter's data directories (sysconfig).

Generated files (rendered configs, logs, pids, caches) go to `RUN_DIR`: `$XFERCTL_RUN_DIR` when set;
else `run/` in a checkout (as always); else, installed, `$XDG_STATE_HOME/xfer-controller`
(`~/.local/state/xfer-controller`), never next to the installed package.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "xfer-controller"
SHARE = Path("share") / "xfer-controller"
MARKER = Path("kamailio") / "kamailio.cfg"  # present in every complete copy


def _checkout() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / MARKER).is_file() else None


def _installed() -> Path | None:
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if tuple(entry.parts[-4:]) == (*SHARE.parts, *MARKER.parts):
            marker = Path(entry.locate()).resolve()
            if marker.is_file():
                return marker.parents[len(MARKER.parts) - 1]
    schemes = [sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")]
    for base in [*(sysconfig.get_path("data", s) for s in schemes), sys.prefix, "/usr/local", "/usr"]:
        if (Path(base) / SHARE / MARKER).is_file():
            return Path(base) / SHARE
    return None


CHECKOUT = _checkout()
ROOT = CHECKOUT or _installed() or Path(sys.prefix) / SHARE  # the last: a broken install, files name where

KAMAILIO_CFG = ROOT / "kamailio" / "kamailio.cfg"
KAMAILIO_PY = ROOT / "kamailio" / "xfer_routing.py"  # what kamailio.cfg loads into app_python3
RTPENGINE_TEMPLATE = ROOT / "rtpengine" / "rtpengine.conf.tmpl"
CONFIG_DIR = ROOT / "config"
EXAMPLE_CONFIG = CONFIG_DIR / "example.yaml"
ARCHITECTURE_DOC = ROOT / "docs" / "ARCHITECTURE.md"
SIPP_SCENARIOS = ROOT / "tests" / "sipp"


def _run_dir() -> Path:
    if os.environ.get("XFERCTL_RUN_DIR"):
        return Path(os.environ["XFERCTL_RUN_DIR"]).expanduser()
    if CHECKOUT is not None:
        return CHECKOUT / "run"
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state").expanduser()
    return state / "xfer-controller"


RUN_DIR = _run_dir()
