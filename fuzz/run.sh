#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and reports the executions.
#
#   fuzz/run.sh [seconds-per-target] [target...]     (default: 60 s, all targets)
#
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them. Inputs that make a target fail are left in fuzz/artifacts/<target>/: copy each to
# fuzz/regressions/<target>/ (replayed by `cargo test`) and add a named test where the parser lives.
# With REKEY_FUZZ_REPORT=1 the figures are written to docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The fuzz crate is its own workspace: a target dir shared with the main workspace would rebuild
# everything with sanitizer flags; keep it apart unless the caller chose one.
case "$CARGO_TARGET_DIR" in */fuzz/target) ;; *) CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" ;; esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

mkdir -p "$CARGO_TARGET_DIR"
# Build every target first, so a compile error shows as one and the timed runs only fuzz.
cargo fuzz build

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi

results=()
total=0
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="$CARGO_TARGET_DIR/fuzz-$t.log"
    echo "== $t: ${SECONDS_PER_TARGET}s"
    # Seeds are read-only inputs; new finds go to corpus/$t (not committed).
    failed=none
    if ! cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        status=1
        failed="see fuzz/artifacts/$t"
        echo "!! $t FAILED; see $log and fuzz/artifacts/$t/"
        tail -30 "$log" || true
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    runs=${runs:-0}
    total=$((total + runs))
    echo "   $runs executions, coverage ${cov:-?} edges"
    results+=("| \`$t\` | ${SECONDS_PER_TARGET} s | $runs | ${cov:-?} | $failed |")
done
echo "fuzzing: $total executions over ${#targets[@]} targets"

if [ "${REKEY_FUZZ_REPORT:-0}" = 1 ]; then
    {
        echo "| target | time | executions | coverage (edges) | failures |"
        echo "|---|---|---|---|---|"
        printf '%s\n' "${results[@]}"
        echo "| all | | $total | | |"
    } | python3 ../tests/reliability/report.py fuzz
fi
exit $status
