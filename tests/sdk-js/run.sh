#!/usr/bin/env bash
# Drive a live rekeyd over HTTPS with the unmodified Azure SDK for JavaScript (the management SDKs
# and @azure/cosmos), once per backend: SQLite, and PostgreSQL when REKEY_TEST_POSTGRES_URL names a
# server (CI sets it), each in a fresh data directory or database.
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

REKEYD_BIN="${REKEYD_BIN:-target/debug/rekeyd}"
case "$REKEYD_BIN" in
    /*) ;;
    *) REKEYD_BIN="$ROOT/$REKEYD_BIN" ;;
esac
[ -x "$REKEYD_BIN" ] || { echo "tests/sdk-js: no rekeyd at $REKEYD_BIN (cargo build -p rekey-server)" >&2; exit 1; }

WORK="$(mktemp -d)"
REKEYD_PID=""
DATABASE=""
stop_rekeyd() {
    if [ -n "$REKEYD_PID" ]; then
        kill "$REKEYD_PID" 2>/dev/null || true
        wait "$REKEYD_PID" 2>/dev/null || true
        REKEYD_PID=""
    fi
    if [ -n "$DATABASE" ]; then
        psql -q "$REKEY_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
        DATABASE=""
    fi
}
trap 'stop_rekeyd; rm -rf "$WORK"' EXIT

# A throwaway CA and a server certificate for 127.0.0.1 (ECDSA P-256). Node trusts the CA through
# NODE_EXTRA_CA_CERTS, read when node starts; the SDKs' bearer-token policy refuses plain http.
TLS="$WORK/tls"
mkdir -p "$TLS"
(
    cd "$TLS"
    ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
    openssl genpkey "${ec[@]}" -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 7 -subj "/CN=rekey sdk-js test CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -addext subjectKeyIdentifier=hash -out ca.pem 2>/dev/null
    openssl genpkey "${ec[@]}" -out server.key 2>/dev/null
    openssl req -new -key server.key -subj /CN=localhost -out server.csr 2>/dev/null
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost \
        subjectKeyIdentifier=hash authorityKeyIdentifier=keyid,issuer >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -sha256 \
        -extfile server.ext -out server.pem 2>/dev/null
)
export NODE_EXTRA_CA_CERTS="$TLS/ca.pem"

# Starts rekeyd on a free port with a fresh data directory; sets REKEY_URL and REKEY_BOOTSTRAP.
start_rekeyd() {
    local backend="$1" data="$WORK/data-$1" log="$WORK/rekeyd-$1.log"
    local -a env_db=(env -u REKEY_DATABASE_URL)
    if [ "$backend" = postgres ]; then
        DATABASE="rekey_sdkjs_$(openssl rand -hex 8)"
        psql -q -v ON_ERROR_STOP=1 "$REKEY_TEST_POSTGRES_URL" -c "CREATE DATABASE $DATABASE" >/dev/null
        # postgres://user@host:port/db with this run's database.
        local server="${REKEY_TEST_POSTGRES_URL#*://}"
        env_db=(env "REKEY_DATABASE_URL=${REKEY_TEST_POSTGRES_URL%%://*}://${server%%/*}/$DATABASE")
    fi
    RUST_LOG=info "${env_db[@]}" "$REKEYD_BIN" --listen 127.0.0.1:0 --data-dir "$data" \
        --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key" 2>"$log" >&2 &
    REKEYD_PID=$!
    REKEY_URL=""
    for _ in $(seq 300); do
        REKEY_URL="$(sed -n 's/.*rekeyd listening on \(https[^ ]*\).*/\1/p' "$log" | head -n1)"
        [ -n "$REKEY_URL" ] && [ -f "$data/bootstrap.json" ] && break
        if ! kill -0 "$REKEYD_PID" 2>/dev/null; then
            echo "rekeyd ($backend) exited at start:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [ -z "$REKEY_URL" ] || [ ! -f "$data/bootstrap.json" ]; then
        echo "rekeyd ($backend) did not start within 30 s:" >&2
        cat "$log" >&2
        exit 1
    fi
    export REKEY_URL REKEY_BOOTSTRAP="$data/bootstrap.json"
}

backends=(sqlite)
[ -n "${REKEY_TEST_POSTGRES_URL:-}" ] && backends+=(postgres)
status=0
for backend in "${backends[@]}"; do
    echo "== Azure SDK for JavaScript against rekeyd on $backend"
    start_rekeyd "$backend"
    if ! node --test --test-concurrency=1 "$@" "$SUITE"/*.test.mjs; then
        status=1
        echo "--- rekeyd log ($backend) ---" >&2
        tail -n 50 "$WORK/rekeyd-$backend.log" >&2
    fi
    stop_rekeyd
done
exit "$status"
