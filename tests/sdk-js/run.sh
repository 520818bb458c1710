#!/usr/bin/env bash
# Drive a live rekeyd over HTTPS with the unmodified Azure SDK for JavaScript (the management SDKs
# and @azure/cosmos), once per backend, each in a fresh data directory or database: SQLite, and
# PostgreSQL on the server REKEY_TEST_POSTGRES_URL names (CI sets it; without it the run fails, unless
# REKEY_TEST_BACKENDS=sqlite leaves PostgreSQL out on purpose).
#
#   tests/sdk-js/run.sh [node --test args...]
#
# REKEYD_BIN: the rekeyd binary (default target/debug/rekeyd; build it first, this script runs no
# cargo). Node.js and npm are required: without them the suite fails, it does not skip.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
SUITE="$ROOT/tests/sdk-js"

for tool in node npm openssl; do
    command -v "$tool" >/dev/null || { echo "tests/sdk-js: $tool is required but not installed" >&2; exit 1; }
done

# npm ci only when the lockfile changed since the last install: it deletes node_modules first.
STAMP="$SUITE/node_modules/.package-lock.installed"
if ! cmp -s "$SUITE/package-lock.json" "$STAMP"; then
    (cd "$SUITE" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$SUITE/package-lock.json" "$STAMP"
fi

# tests/common/rekeyd.mjs starts rekeyd over HTTPS with a throwaway CA (trusted through
# NODE_EXTRA_CA_CERTS, read when node starts; the SDKs' bearer-token policy refuses plain http) on
# each backend in turn, waits for its ready file, and gives the tests REKEY_URL and REKEY_READY.
node "$ROOT/tests/common/rekeyd.mjs" --tls -- \
    node --test --test-concurrency=1 "$@" "$SUITE"/*.test.mjs
