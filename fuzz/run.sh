#!/usr/bin/env bash
# Runs every fuzz target for MINUTES (default 10) each, seeded from fuzz/seeds/TARGET and the
# committed regressions; prints executions and findings per target. FUZZ_PARALLEL=N runs N
# targets at a time (one core each; default 1).
# Crashes land in fuzz/artifacts/TARGET/; copy them to fuzz/regressions/TARGET/ once fixed,
# and `cargo test --test fuzz_regressions` replays them.
# Needs the nightly toolchain and `cargo install cargo-fuzz --locked`. FUZZ_SANITIZER=address
# adds AddressSanitizer (slower; the default `none` finds panics, hangs and memory blow-ups,
# which is what safe Rust can suffer).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"
cargo +nightly fuzz build -s "$sanitizer"

run_one() {
    local target=$1 minutes=$2 sanitizer=$3
    local corpus="fuzz/corpus/$target" log="fuzz/$target.log"
    mkdir -p "$corpus" "fuzz/regressions/$target"
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    cp -n fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
    set +e
    cargo +nightly fuzz run -s "$sanitizer" "$target" "$corpus" -- \
        -max_total_time=$((minutes * 60)) -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        >"$log" 2>&1
    local status=$?
    set -e
    local execs
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    if [ "$status" -eq 0 ]; then
        echo "$target: ${execs:-?} executions in $minutes min, no findings"
    else
        echo "$target: ${execs:-?} executions, FINDING (exit $status): see $log and fuzz/artifacts/$target"
    fi
}
export -f run_one
printf '%s\n' container raw_stream realtime_events multipart_form stream_config |
    xargs -P "${FUZZ_PARALLEL:-1}" -I{} bash -c "run_one {} $minutes $sanitizer"
