"""Fixtures of the client tests: the servers ``cargo test --test python_client`` starts, the
speech corpus, and a word error rate.

The test sets:
  HEARKEN_TEST_SERVER        an open server, HOST:PORT
  HEARKEN_TEST_KEYED_SERVER  a TLS server wanting a key (https://HOST:PORT), whose tenant may
                             hold one session at a time
  HEARKEN_TEST_API_KEY       that key
  HEARKEN_TEST_CA            the CA the TLS server's certificate chains to
  HEARKEN_CORPUS_DIR         the corpus (manifest.jsonl and clips)
Against servers of your own, set them and run `PYTHONPATH=clients/python python3 -m pytest
clients/python/tests`.
"""

from __future__ import annotations

import json
import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from hearken_client import Client

CORPUS = Path(os.environ.get("HEARKEN_CORPUS_DIR", Path(__file__).parents[3] / ".." / "shared" / "corpus"))


@dataclass(frozen=True)
class Clip:
    """A corpus clip: its file and what is said in it."""

    path: Path
    text: str

    def pcm16(self) -> bytes:
        """The clip's samples as raw PCM16 (the corpus is 16 kHz mono 16-bit WAV)."""
        with wave.open(str(self.path), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
            return w.readframes(w.getnframes())


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run these tests with `cargo test --test python_client`")
    return value


@pytest.fixture(scope="session")
def server() -> str:
    return _env("HEARKEN_TEST_SERVER")


@pytest.fixture(scope="session")
def keyed() -> tuple[str, str, str]:
    """The TLS server that wants a key: (URL, key, CA file)."""
    return _env("HEARKEN_TEST_KEYED_SERVER"), _env("HEARKEN_TEST_API_KEY"), _env("HEARKEN_TEST_CA")


@pytest.fixture(scope="session")
def client(server: str):
    with Client(server) as client:
        yield client


def clip(clip_id: str) -> Clip:
    for line in (CORPUS / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line) if line.strip() else None
        if entry and entry["id"] == clip_id:
            return Clip(CORPUS / entry["file"], entry["text"])
    raise AssertionError(f"clip {clip_id} missing from {CORPUS}/manifest.jsonl")


@pytest.fixture(scope="session")
def jfk() -> Clip:
    """11 s: "And so, my fellow Americans, ask not what your country can do for you..."."""
    return clip("jfk")


@pytest.fixture(scope="session")
def short() -> Clip:
    """5 s: "He began a confused complaint against the wizard, ..."; for tests that need speech,
    not length, on a 2-core machine."""
    return clip("ls_61-70968-0000")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def finals(updates) -> str:
    """The text of a stream's final updates, joined."""
    return " ".join(u.committed.strip() for u in updates if u.is_final)
