#!/usr/bin/env bash
# The GPU check: hearken built with `--features cuda`, then `bench offline` and `bench stream`
# run with `--device cuda`, printing the same figures as on the CPU.
#
# The GPU machines have a CUDA driver and the CUDA 13 runtime libraries (cuBLAS, cuRAND,
# NVRTC, cudart as pip wheels) but no Rust toolchain, no network, and take at most 64 MiB
# per call. So the work is split:
#
#   here:  scripts/gpu-check.sh build        # the CUDA build alone (run before a resolve)
#   here:  scripts/gpu-check.sh pack         # build (scripts/cuda-toolchain.sh), then pack
#                                            # binary + tiny.en + English corpus into
#                                            # .gpu/part-NN, each under the carry limit
#   there: scripts/gpu-check.sh receive      # once per part, carrying .gpu/part-NN
#   there: scripts/gpu-check.sh run [OUT]    # with the last part: unpack and measure
#
# The parts wait in /tmp/hearken-gpu on the GPU machine between calls, so the calls must
# follow each other while it is warm. `run` writes its log and JSON to OUT (default $OUT).
#
# Env: CUDA_COMPUTE_CAP (default 90: H100/H200), GPU_BATCHES (default 8,32,64),
#      GPU_SESSIONS (default 16,64,256), GPU_REALTIME (default 0: streams as fast as the
#      server allows; 1 paces them at real time), GPU_CHECK_DEVICE (default cuda).
# Rehearsal without a GPU: PACK_BINARY=target/release/hearken scripts/gpu-check.sh pack, then
#      GPU_CHECK_DEVICE=cpu GPU_BATCHES=1 GPU_SESSIONS=2 scripts/gpu-check.sh run /tmp/gpu-out
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE=/tmp/hearken-gpu
PART_BYTES=$((56 * 1024 * 1024))

build_cuda() {
    : "${CUDA_COMPUTE_CAP:=90}"
    export CUDA_COMPUTE_CAP
    scripts/cuda-toolchain.sh >/dev/null
    # shellcheck disable=SC1091
    source "${HEARKEN_CUDA_PREFIX:-$HOME/.cache/hearken/cuda-13.0}/env.sh"
    echo "--- cargo build --release --features cuda (compute capability $CUDA_COMPUTE_CAP)" >&2
    CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-target/cuda}" cargo build --release --locked --features cuda >&2
    echo "${CUDA_TARGET_DIR:-target/cuda}/release/hearken"
}

pack() {
    # PACK_BINARY packs a given build instead (a CPU build, to rehearse `run` with
    # GPU_CHECK_DEVICE=cpu on a machine without a GPU).
    local bin="${PACK_BINARY:-$(build_cuda)}"

    local work
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN
    mkdir -p "$work/bin" "$work/models" "$work/corpus/en"
    strip -o "$work/bin/hearken" "$bin"
    # The CUDA binary needs the driver to start, so the model comes from the CPU build's cache.
    local model_dir="${HEARKEN_MODEL_DIR:-$HOME/.cache/hearken/models}"
    if [[ ! -f "$model_dir/tiny.en/model.bin" ]]; then
        echo "tiny.en is not in $model_dir: run \`cargo run --release -- models --fetch tiny.en\` first" >&2
        exit 1
    fi
    cp -r "$model_dir/tiny.en" "$work/models/"
    local corpus="${HEARKEN_CORPUS_DIR:-../shared/corpus}"
    grep '"lang": "en"' "$corpus/manifest.jsonl" >"$work/corpus/manifest.jsonl"
    cp "$corpus"/en/*.wav "$work/corpus/en/"

    rm -rf .gpu
    mkdir -p .gpu
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    tar -C "$work" -czf - . | split -b "$PART_BYTES" -d - .gpu/part-
    ls -l .gpu
    local parts=(.gpu/part-*)
    echo "Now, on the GPU machine, one call per part while it stays warm:"
    for part in "${parts[@]}"; do
        echo "  run(carry=[\"$part\"], command=\"scripts/gpu-check.sh receive\")"
    done
    echo "  run(command=\"scripts/gpu-check.sh run\")   # may share the last part's call"
}

receive() {
    mkdir -p "$STAGE"
    for part in .gpu/part-*; do
        cp "$part" "$STAGE/"
        echo "received $(basename "$part") ($(stat -c %s "$part") bytes)"
    done
    ls "$STAGE"
}

# The CUDA 13 libraries the binary links (cuBLAS, cuRAND, NVRTC, cudart) from the machine's
# pip wheels; the driver's libcuda comes from the system.
cuda_library_path() {
    python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = {os.path.dirname(p) for r in roots for p in glob.glob(f"{r}/nvidia/**/lib*.so.*", recursive=True)}
print(":".join(sorted(dirs)))
EOF
}

run() {
    local out="${1:-${OUT:-$STAGE/out}}"
    mkdir -p "$out"
    [[ -d .gpu ]] && receive >/dev/null
    rm -rf "$STAGE/unpacked"
    mkdir -p "$STAGE/unpacked"
    cat "$STAGE"/part-* | tar -C "$STAGE/unpacked" -xzf -
    local root="$STAGE/unpacked"
    export LD_LIBRARY_PATH="$(cuda_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export HEARKEN_MODEL_DIR="$root/models" HEARKEN_CORPUS_DIR="$root/corpus"
    local hearken="$root/bin/hearken"
    local device="${GPU_CHECK_DEVICE:-cuda}"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
    fi
    local realtime=()
    [[ "${GPU_REALTIME:-0}" == 1 ]] && realtime=(--realtime)
    {
        echo "--- bench offline --device $device"
        "$hearken" bench offline --device "$device" --model-workers 1 --no-peer --batch "${GPU_BATCHES:-8,32,64}"
        echo "--- bench stream --device $device"
        "$hearken" bench stream --device "$device" --model-workers 1 \
            --sessions "${GPU_SESSIONS:-16,64,256}" --max-batch 64 \
            --clips-per-session 1 "${realtime[@]}" --json "$out/stream.json"
    } 2>&1 | tee "$out/gpu-check.log"
}

case "${1:-}" in
    build) build_cuda ;;
    pack) pack ;;
    receive) receive ;;
    run) run "${2:-}" ;;
    *)
        sed -n '2,23p' "$0"
        exit 2
        ;;
esac
