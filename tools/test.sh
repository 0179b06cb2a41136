#!/usr/bin/env bash
# Install everything Ballast's test suite needs and run it.
#
#   bash tools/test.sh            # the default suite (slow tests excluded)
#   bash tools/test.sh -m slow    # extra arguments go to pytest
#
# The tests run in one worker process per CPU (pytest-xdist); BALLAST_TEST_WORKERS sets
# how many (0: in this process, e.g. for a debugger).
#
# System packages (QEMU, a Debian kernel and busybox for the live virtio-balloon
# capture, Chromium for the report rendering test) are installed when this runs
# as root or with sudo; elsewhere the tests that need them say why they skip,
# except under CI (CI=true), where they must run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
VENV=${BALLAST_VENV:-.venv}

can_root() { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if can_root && command -v apt-get >/dev/null 2>&1; then
    bash .ci/install-qemu.sh >/dev/null
    missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    if [ ${#missing[@]} -gt 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    fi
elif [ "${CI:-}" = "true" ]; then
    echo "tools/test.sh: CI needs root or sudo with apt-get to install QEMU and Chromium" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[dev]'

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(-m "not slow")
fi
exec "$VENV/bin/python" -m pytest -q -n "${BALLAST_TEST_WORKERS:-auto}" "${args[@]}"
