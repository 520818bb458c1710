#!/usr/bin/env bash
# The bounded reliability checks CI runs (from scripts/test), against target/debug/rekeyd: the
# history checkers' own tests, 5 SIGKILLs under load, 10 linearizability histories (and, when
# REKEY_TEST_POSTGRES_URL names a PostgreSQL server, as scripts/test arranges, 5 more over 3 nodes on a
# fresh database there), the resource limits with 10,000 idle connections, and schemathesis with 20
# examples per operation. The parser fuzzers' inputs are replayed by cargo nextest
# (crates/rekey-server/tests/fuzz_replay.rs).
# Full-length versions: scripts/reliability (docs/reliability.md says which is which).
set -euo pipefail
cd "$(dirname "$0")/../.."
checks=5
python3 -m unittest -q tests/reliability/test_checker.py
python3 tests/reliability/crash.py --kills 5
python3 tests/reliability/linearizability.py --histories 10 --clients 4 --ops 30
if [ -n "${REKEY_TEST_POSTGRES_URL:-}" ]; then
    python3 tests/reliability/linearizability.py --histories 5 --clients 4 --ops 30 \
        --nodes 3 --postgres "$REKEY_TEST_POSTGRES_URL"
    checks=6
elif [ "${REKEY_TEST_BACKENDS:-}" = sqlite ]; then
    echo "REKEY_TEST_BACKENDS=sqlite: the multi-node linearizability histories did not run"
else
    echo "REKEY_TEST_POSTGRES_URL is not set: the multi-node linearizability histories need it" \
        "(scripts/test starts a server; REKEY_TEST_BACKENDS=sqlite leaves them out on purpose)" >&2
    exit 1
fi
python3 tests/reliability/limits.py --idle 10000
tests/fuzz-api/run.sh 20
# Reached only if every check above passed (set -e): one closing line for the whole step.
echo "reliability: $checks passed, 0 failed"
