#!/usr/bin/env bash
# Drive rekeyd's Keys & Endpoint page in real headless Chromium (Debian's chromium, driven by
# playwright-core) against a live rekeyd with a fresh data directory.
#
#   tests/web/run.sh [node --test args...]
#
# REKEYD_BIN: the rekeyd binary (default target/debug/rekeyd, read by tests/common/rekeyd.mjs; build
# it first, this script runs no cargo). CHROMIUM: the browser (default /usr/bin/chromium). WEB_SCREENSHOTS: where the tests save
# screenshots of the main views (default target/web-screenshots).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
WEB="$ROOT/tests/web"

# npm ci only when the lockfile changed since the last install: it deletes node_modules first.
STAMP="$WEB/node_modules/.package-lock.installed"
if ! cmp -s "$WEB/package-lock.json" "$STAMP"; then
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$WEB/package-lock.json" "$STAMP"
fi

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export WEB_SCREENSHOTS="${WEB_SCREENSHOTS:-$ROOT/target/web-screenshots}"
mkdir -p "$WEB_SCREENSHOTS"

# tests/common/rekeyd.mjs starts rekeyd on a free port with a fresh data directory (SQLite), waits
# for its ready file, and gives the command REKEY_URL and REKEY_READY (the owner token). Last-use
# times are flushed every 100 ms so the page shows them without waiting. seed.mjs makes resources of
# every type and a Reader token (POST /rekey/tokens and a role assignment) and writes them to the
# fixture file; the tests read it.
FIXTURE_DIR="$(mktemp -d)"
trap 'rm -rf "$FIXTURE_DIR"' EXIT
export REKEY_FIXTURE="$FIXTURE_DIR/fixture.json"
export WEB
node "$ROOT/tests/common/rekeyd.mjs" --backends sqlite --flag --usage-flush-ms=100 -- \
    bash -c 'node "$WEB/seed.mjs" && node --test --test-concurrency=1 "$@" "$WEB/keys-page.test.mjs"' \
    web-tests "$@"
