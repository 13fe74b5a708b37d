#!/usr/bin/env bash
# Assembles a CUDA 13.0 toolkit from PyPI wheels, so `--features cuda` builds on a machine
# with no GPU and no system CUDA (no machine here reaches NVIDIA's installers).
#
#   scripts/cuda-toolchain.sh [PREFIX]      # default: ~/.cache/hearken/cuda-13.0
#   source PREFIX/env.sh                    # CUDA_HOME, PATH, LIBRARY_PATH, CUDARC_CUDA_VERSION
#   cargo build --release --features cuda
#
# Why these pieces:
# - 13.0 matches the oldest driver that runs CUDA 13 (580): PTX from a newer nvcc is refused by
#   an older driver's JIT, so the compiler is pinned, not "latest".
# - `nvidia-cuda-nvcc-cu12` wheels ship ptxas and libnvvm but no nvcc; the CUDA 13 wheels
#   (`nvidia-cuda-nvcc` + `-crt` + `nvidia-nvvm`) do.
# - candle links libcuda, cuBLAS, cuRAND, NVRTC and cudart dynamically. The driver library
#   (libcuda.so.1) comes with the GPU driver, never with a toolkit wheel, so a link-time stub is
#   built from cuda.h into lib64/stubs; at run time the real driver's libcuda.so.1 is loaded.
set -euo pipefail

PREFIX="${1:-${HEARKEN_CUDA_PREFIX:-$HOME/.cache/hearken/cuda-13.0}}"
WHEELS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)

CUDA_HOME="$PREFIX/site/nvidia/cu13"
if [[ -x "$CUDA_HOME/bin/nvcc" && -f "$CUDA_HOME/lib64/stubs/libcuda.so" && -f "$PREFIX/env.sh" ]]; then
    echo "CUDA toolkit already at $CUDA_HOME"
else
    echo "--- CUDA 13.0 wheels into $PREFIX/site"
    mkdir -p "$PREFIX"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
        --upgrade --target "$PREFIX/site" "${WHEELS[@]}"

    echo "--- toolkit layout"
    # The wheels put libraries in lib/ under versioned names only; build scripts look for
    # lib64/ and the linker for unversioned names.
    ln -sfn lib "$CUDA_HOME/lib64"
    for versioned in "$CUDA_HOME"/lib/lib*.so.*; do
        name="$(basename "$versioned")"
        ln -sfn "$name" "$CUDA_HOME/lib/${name%%.so.*}.so"
    done

    echo "--- libcuda link stub"
    # Every driver entry point named in cuda.h (current and legacy _vN names) as an empty
    # function, with the real library's soname so the binary asks for libcuda.so.1 at run time.
    mkdir -p "$CUDA_HOME/lib/stubs"
    grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$CUDA_HOME/include/cuda.h" | sort -u |
        sed 's/.*/void &(void) {}/' >"$CUDA_HOME/lib/stubs/libcuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA_HOME/lib/stubs/libcuda.so" \
        "$CUDA_HOME/lib/stubs/libcuda_stub.c"

    cat >"$PREFIX/env.sh" <<EOF
# Source this before \`cargo build --features cuda\` (written by scripts/cuda-toolchain.sh).
export CUDA_HOME="$CUDA_HOME"
export CUDA_PATH="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:\$PATH"
# The stub only resolves the link; LD_LIBRARY_PATH deliberately leaves it out.
export LIBRARY_PATH="$CUDA_HOME/lib:$CUDA_HOME/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export RUSTFLAGS="\${RUSTFLAGS:-} -L native=$CUDA_HOME/lib/stubs"
export CUDARC_CUDA_VERSION=13000
# Compute capability the kernels are compiled for (8.0 = Ampere; PTX JIT covers newer GPUs).
# Set 90 for H100/H200 builds.
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-80}"
# candle-kernels compiles its CUDA sources one per thread of this pool (default: half the cores).
export CUDAFORGE_THREADS="\${CUDAFORGE_THREADS:-\$(nproc)}"
EOF
fi

# shellcheck disable=SC1091
source "$PREFIX/env.sh"
nvcc --version | tail -2
echo "source $PREFIX/env.sh  # then: cargo build --release --features cuda"
