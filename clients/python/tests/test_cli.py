"""``python -m hearken_client`` as a user runs it: a process, raw PCM piped on stdin as from
``arecord``, output parsed from stdout."""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import Clip, wer

PACKAGE = Path(__file__).parents[1]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, stdin: bytes = b"") -> Run:
    """Runs the command line with ``stdin`` piped in, with no key from the environment."""
    env = dict(os.environ, PYTHONPATH=str(PACKAGE))
    env.pop("HEARKEN_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "hearken_client", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def stereo(pcm: bytes) -> bytes:
    """Mono PCM16 as interleaved stereo, both channels the same."""
    mono = array.array("h", pcm)
    both = array.array("h", bytes(len(pcm) * 2))
    both[0::2] = mono
    both[1::2] = mono
    return both.tobytes()


def test_stream_reads_raw_pcm_from_stdin(server: str, jfk: Clip, short: Clip) -> None:
    run = cli("stream", "-", "--server", server, "--format", "jsonl", stdin=jfk.pcm16())
    assert run.returncode == 0, run.stderr
    updates = [json.loads(line) for line in run.stdout.splitlines()]
    text = " ".join(u["committed"].strip() for u in updates if u["is_final"])
    assert wer(jfk.text, text) <= 0.15, text
    assert updates[-1]["is_final"] and updates[-1]["words"], updates[-1]

    # Stereo with --channels 2, printed as text to a pipe: finals only, no control codes.
    run = cli(
        "stream", "-", "--server", server, "--channels", "2", "--format", "text", stdin=stereo(short.pcm16())
    )
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stdout and "\x1b" not in run.stdout, repr(run.stdout)
    assert wer(short.text, run.stdout) <= 0.15, run.stdout


def test_recognize_and_models(server: str, jfk: Clip) -> None:
    run = cli("recognize", str(jfk.path), "--server", f"http://{server}", "--format", "text")
    assert run.returncode == 0, run.stderr
    assert wer(jfk.text, run.stdout) <= 0.15, run.stdout

    run = cli("models", "--server", server, "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    models = [json.loads(line) for line in run.stdout.splitlines()]
    assert models[0]["id"] == "tiny.en" and models[0]["loaded"], models
