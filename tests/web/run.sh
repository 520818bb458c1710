#!/usr/bin/env bash
# Drive rekeyd's Keys & Endpoint page in real headless Chromium (Debian's chromium, driven by
# playwright-core) against a live rekeyd with a fresh data directory.
#
#   tests/web/run.sh [node --test args...]
#
# REKEYD_BIN: the rekeyd binary (default target/debug/rekeyd; build it first, this script runs no
# cargo). CHROMIUM: the browser (default /usr/bin/chromium). WEB_SCREENSHOTS: where the tests save
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

REKEYD_BIN="${REKEYD_BIN:-target/debug/rekeyd}"
case "$REKEYD_BIN" in
    /*) ;;
    *) REKEYD_BIN="$ROOT/$REKEYD_BIN" ;;
esac
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export WEB_SCREENSHOTS="${WEB_SCREENSHOTS:-$ROOT/target/web-screenshots}"
mkdir -p "$WEB_SCREENSHOTS"

WORK="$(mktemp -d)"
REKEYD_PID=""
cleanup() {
    if [ -n "$REKEYD_PID" ]; then
        kill "$REKEYD_PID" 2>/dev/null || true
        wait "$REKEYD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Port 0: rekeyd picks a free port and logs it. Last-use times are flushed every 100 ms so the
# page shows them without waiting.
RUST_LOG=info "$REKEYD_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --usage-flush-ms 100 \
    2>"$WORK/rekeyd.log" &
REKEYD_PID=$!
REKEY_URL=""
for _ in $(seq 300); do
    REKEY_URL="$(sed -n 's/.*rekeyd listening on \(http[^ ]*\).*/\1/p' "$WORK/rekeyd.log" | head -n1)"
    [ -n "$REKEY_URL" ] && break
    if ! kill -0 "$REKEYD_PID" 2>/dev/null; then
        echo "rekeyd exited at start:" >&2
        cat "$WORK/rekeyd.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$REKEY_URL" ]; then
    echo "rekeyd did not start within 30 s:" >&2
    cat "$WORK/rekeyd.log" >&2
    exit 1
fi
export REKEY_URL

# The owner token from bootstrap.json, then resources of every type and a Reader token (made with
# POST /rekey/tokens and a role assignment): seed.mjs writes them to the fixture file.
export REKEY_BOOTSTRAP="$WORK/data/bootstrap.json"
export REKEY_FIXTURE="$WORK/fixture.json"
node "$WEB/seed.mjs"

status=0
node --test --test-concurrency=1 "$@" "$WEB/keys-page.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- rekeyd log ---" >&2
    tail -n 50 "$WORK/rekeyd.log" >&2
fi
exit "$status"
