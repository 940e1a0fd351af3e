#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine: the daemons from Debian, and a
# virtualenv (.venv) with the project installed. Safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

# libsox-fmt-mp3: tenants upload hold music and prompts as MP3 more often than anything else
DEBS=(kamailio kamailio-extra-modules kamailio-redis-modules kamailio-json-modules kamailio-python3-modules
      kamailio-utils-modules rtpengine-daemon rtpengine-utils sip-tester redis-server
      sox libsox-fmt-mp3 espeak-ng python3-venv iproute2 procps)

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages ship init scripts but nothing runs under CI; our stack starts its own daemons.

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    $PY -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "setup: installing the project into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    rm -f .venv/.installed-*; touch "$stamp"
fi
echo "setup: ok"
