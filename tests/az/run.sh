#!/usr/bin/env bash
# Runs the unmodified Azure CLI (`az`, from PyPI) against a live rekeyd over HTTPS.
#
#   tests/az/run.sh [pytest args...]
#
# REKEYD_BIN: the rekeyd binary (default target/debug/rekeyd). Build it first.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
VENV="tests/az/.venv"
REQ="tests/az/requirements.txt"
STAMP="$VENV/.requirements.installed"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! cmp -s "$REQ" "$STAMP"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
fi
REKEYD_BIN="${REKEYD_BIN:-target/debug/rekeyd}"
case "$REKEYD_BIN" in /*) ;; *) REKEYD_BIN="$ROOT/$REKEYD_BIN" ;; esac
export REKEYD_BIN
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/az "$@"
