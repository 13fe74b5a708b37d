#!/usr/bin/env bash
# Regenerates hearken_client/_proto/ from proto/hearken/speech/v1/speech.proto with
# grpcio-tools. The stubs are committed, so users need no protoc; tests/test_stubs.py runs this
# into a temporary directory and fails when the committed files differ, so they never drift.
#
#   clients/python/generate_stubs.sh            # rewrite hearken_client/_proto/
#   clients/python/generate_stubs.sh OUT_DIR    # write the stubs to OUT_DIR instead
#
# The generated code depends on the grpcio-tools version (it names it, and the protobuf runtime
# it needs), so that version is pinned here and in requirements.txt.
set -euo pipefail

TOOLS_VERSION=1.85.1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/hearken_client/_proto}"
python="${PYTHON:-python3}"

installed="$("$python" -c 'from importlib.metadata import version; print(version("grpcio-tools"))' 2>/dev/null || true)"
if [[ "$installed" != "$TOOLS_VERSION" ]]; then
    echo "generate_stubs.sh needs grpcio-tools==$TOOLS_VERSION (found: ${installed:-none});" \
         "run: $python -m pip install grpcio-tools==$TOOLS_VERSION" >&2
    exit 2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The proto directory is mapped onto the package path, so the generated modules import each
# other as hearken_client._proto.speech_pb2 and need no rewriting.
"$python" -m grpc_tools.protoc \
    "-Ihearken_client/_proto=$repo/proto/hearken/speech/v1" \
    "--python_out=$scratch" \
    "--pyi_out=$scratch" \
    "--grpc_python_out=$scratch" \
    "hearken_client/_proto/speech.proto"
mkdir -p "$out"
cp "$scratch"/hearken_client/_proto/speech_pb2.py \
   "$scratch"/hearken_client/_proto/speech_pb2.pyi \
   "$scratch"/hearken_client/_proto/speech_pb2_grpc.py "$out"/
