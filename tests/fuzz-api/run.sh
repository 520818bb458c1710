#!/usr/bin/env bash
# API fuzzing: schemathesis against /openapi.json of a live rekeyd on 127.0.0.1 (plain HTTP), with
# the owner's bearer token and a bounded number of examples per operation.
#
#   tests/fuzz-api/run.sh [max-examples-per-operation] [--report]    (default 25)
#
# REKEYD_BIN: the rekeyd binary (default target/debug/rekeyd); this script does not run cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="tests/fuzz-api/.venv"
REQ="tests/fuzz-api/requirements.txt"
STAMP="$VENV/.requirements.installed"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! cmp -s "$REQ" "$STAMP"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
fi
exec "$VENV/bin/python" tests/fuzz-api/run.py "$@"
