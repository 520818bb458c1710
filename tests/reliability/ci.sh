#!/usr/bin/env bash
# The bounded reliability checks CI runs (from scripts/test), against target/debug/rekeyd: the
# history checkers' own tests, 5 SIGKILLs under load, 10 linearizability histories, the resource
# limits with 10,000 idle connections, and schemathesis with 20 examples per operation. The parser
# fuzzers' inputs are replayed by cargo nextest (crates/rekey-server/tests/fuzz_replay.rs).
# Full-length versions: scripts/reliability (docs/reliability.md says which is which).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m unittest -q tests/reliability/test_checker.py
python3 tests/reliability/crash.py --kills 5
python3 tests/reliability/linearizability.py --histories 10 --clients 4 --ops 30
python3 tests/reliability/limits.py --idle 10000
tests/fuzz-api/run.sh 20
# Reached only if every check above passed (set -e): one closing line for the whole step.
echo "reliability: 5 passed, 0 failed"
