"""The committed gRPC stubs are what generate_stubs.sh makes from the proto today: a change to
speech.proto without regenerating them fails here, not in a user's hands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1]
COMMITTED = PACKAGE / "hearken_client" / "_proto"
STUBS = ("speech_pb2.py", "speech_pb2.pyi", "speech_pb2_grpc.py")


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    run = subprocess.run(
        ["bash", str(PACKAGE / "generate_stubs.sh"), str(tmp_path)],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    stale = [name for name in STUBS if (tmp_path / name).read_bytes() != (COMMITTED / name).read_bytes()]
    assert not stale, (
        f"hearken_client/_proto/{', '.join(stale)} no longer match proto/hearken/speech/v1/speech.proto; "
        "run clients/python/generate_stubs.sh"
    )
