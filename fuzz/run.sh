#!/usr/bin/env bash
# Runs every fuzz target for MINUTES (default 10) each, one after another, seeded from
# fuzz/seeds/TARGET and the committed regressions; prints executions and findings per target.
# Crashes land in fuzz/artifacts/TARGET/; copy them to fuzz/regressions/TARGET/ once fixed,
# and `cargo test --test fuzz_regressions` replays them.
# Needs the nightly toolchain and `cargo install cargo-fuzz --locked`. FUZZ_SANITIZER=address
# adds AddressSanitizer (slower; the default `none` finds panics, hangs and memory blow-ups,
# which is what safe Rust can suffer).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
cargo +nightly fuzz build -s "${FUZZ_SANITIZER:-none}"
targets=(container raw_stream realtime_events multipart_form stream_config)
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/regressions/$target"
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    cp -n fuzz/regressions/"$target"/* "$corpus"/ 2>/dev/null || true
    log="fuzz/$target.log"
    echo "== $target: $minutes min"
    set +e
    cargo +nightly fuzz run -s "${FUZZ_SANITIZER:-none}" "$target" "$corpus" -- \
        -max_total_time=$((minutes * 60)) -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
        >"$log" 2>&1
    status=$?
    set -e
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "   executions: ${execs:-?}, exit status: $status ($( [ $status -eq 0 ] && echo 'no findings' || echo "finding: see $log and fuzz/artifacts/$target"))"
done
