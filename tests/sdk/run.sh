#!/usr/bin/env bash
# Drive a running rekeyd with the unmodified Azure Python SDKs.
#
#   tests/sdk/run.sh [pytest args...]
#
# REKEYD_BIN: path to the rekeyd binary (default target/debug/rekeyd,
# relative to the repo root). Build it first; this script does not run cargo.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT="$(pwd)"

VENV="tests/sdk/.venv"
REQ="tests/sdk/requirements.txt"
STAMP="$VENV/.requirements.installed"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# Reinstall only when requirements.txt changed since the last install.
if ! cmp -s "$REQ" "$STAMP"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
fi

REKEYD_BIN="${REKEYD_BIN:-target/debug/rekeyd}"
case "$REKEYD_BIN" in
    /*) ;;
    *) REKEYD_BIN="$ROOT/$REKEYD_BIN" ;;
esac
export REKEYD_BIN

exec "$VENV/bin/python" -m pytest -q tests/sdk "$@"
