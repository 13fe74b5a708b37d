"""Audio in: files, pipes and iterables of raw PCM16 turned into the chunks a stream sends.

A 16-bit PCM WAV file is sent as LINEAR16 at its own rate and channels (the server resamples
and downmixes), in 100 ms messages, so results arrive while it plays. Other containers (FLAC,
Ogg, MP3, other WAV sample formats) are sent as they are: the server decodes them when the
stream ends, so they get finals only. Raw PCM is cut into whole samples, because an odd byte
count of LINEAR16 is an error on the server.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

from ._proto import speech_pb2 as pb
from .config import Config

#: Audio per message, as a microphone client sends it (the Rust client does the same).
FRAME_SECONDS = 0.1
#: Bytes per message of a container file.
CONTAINER_CHUNK = 64 * 1024

#: What ``stream`` and ``recognize`` take as a file.
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class AudioFormat:
    """How a source's bytes are encoded; ``bytes_per_second`` is None for containers, whose
    pace cannot be told from their size."""

    encoding: pb.AudioEncoding
    sample_rate: int = 0
    channels: int = 0
    bytes_per_second: float | None = None

    def to_proto(self, config: Config) -> pb.RecognitionConfig:
        return config.to_proto(self.encoding, self.sample_rate, self.channels)


def pcm16(config: Config) -> AudioFormat:
    """Raw PCM16 at the config's rate and channels."""
    if config.sample_rate <= 0 or config.channels <= 0:
        raise ValueError(f"raw PCM needs a positive sample rate and channel count, not {config}")
    rate, channels = config.sample_rate, config.channels
    return AudioFormat(pb.LINEAR16, rate, channels, float(rate * channels * 2))


def sniff(head: bytes) -> pb.AudioEncoding | None:
    """The container encoding whose magic bytes ``head`` starts with, if any."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return pb.WAV
    if head[:4] == b"fLaC":
        return pb.FLAC
    if head[:4] == b"OggS":
        return pb.OGG
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return pb.MP3
    return None


def open_file(path: PathLike) -> tuple[AudioFormat, Iterator[bytes]]:
    """The format and chunks of an audio file: PCM16 WAV as LINEAR16 frames, anything else
    hearken decodes as its container's bytes."""
    path = Path(path)
    with path.open("rb") as f:
        encoding = sniff(f.read(12))
    if encoding is None:
        raise ValueError(
            f"{path}: not a WAV, FLAC, Ogg or MP3 file; send raw PCM16 as an iterable of bytes "
            "with Config(sample_rate=..., channels=...)"
        )
    if encoding == pb.WAV:
        pcm = _wav_pcm16_format(path)
        if pcm is not None:
            return pcm, _wav_frames(path)
    return AudioFormat(encoding), _file_chunks(path)


def _wav_pcm16_format(path: Path) -> AudioFormat | None:
    """LINEAR16 at the file's rate for a plain 16-bit PCM WAV; None for the WAV files the
    stdlib cannot read or that hold other sample formats (the server decodes those)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
                return None
            rate, channels = w.getframerate(), w.getnchannels()
    except (wave.Error, EOFError):
        return None
    return AudioFormat(pb.LINEAR16, rate, channels, float(rate * channels * 2))


def _wav_frames(path: Path) -> Iterator[bytes]:
    with wave.open(str(path), "rb") as w:
        frames = max(1, int(w.getframerate() * FRAME_SECONDS))
        while data := w.readframes(frames):
            yield data


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(CONTAINER_CHUNK):
            yield data


def read_pipe(pipe: BinaryIO, audio: AudioFormat) -> Iterator[bytes]:
    """100 ms blocks of raw PCM from a pipe as they arrive (a microphone's pipe blocks between
    them); the last block may be shorter."""
    size = max(2, int((audio.bytes_per_second or 0) * FRAME_SECONDS))
    while True:
        block = _read_up_to(pipe, size)
        if not block:
            return
        yield block


def _read_up_to(pipe: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the input: a pipe's ``read`` may return
    less than asked."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        part = pipe.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


class SampleCutter:
    """Cuts raw PCM chunks at whole sample frames into messages of at most 100 ms: a partial
    frame is carried into the next chunk (and dropped at the end, as the Rust client does)."""

    def __init__(self, audio: AudioFormat) -> None:
        self._frame = 2 * audio.channels
        self._limit = max(self._frame, int(audio.sample_rate * FRAME_SECONDS) * self._frame)
        self._carry = b""

    def cut(self, chunk: bytes) -> list[bytes]:
        data = self._carry + bytes(chunk)
        end = len(data) - len(data) % self._frame
        self._carry = data[end:]
        return [data[i : min(i + self._limit, end)] for i in range(0, end, self._limit)]


def whole_samples(chunks: Iterable[bytes], audio: AudioFormat) -> Iterator[bytes]:
    """The chunks cut by a ``SampleCutter``."""
    cutter = SampleCutter(audio)
    for chunk in chunks:
        yield from cutter.cut(chunk)


async def awhole_samples(chunks: AsyncIterable[bytes], audio: AudioFormat) -> AsyncIterator[bytes]:
    """``whole_samples`` of an async iterable."""
    cutter = SampleCutter(audio)
    async for chunk in chunks:
        for piece in cutter.cut(chunk):
            yield piece


def paced(chunks: Iterable[bytes], bytes_per_second: float) -> Iterator[bytes]:
    """The chunks, each released when its audio would have been spoken in full, as a live
    microphone delivers it."""
    started = time.monotonic()
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        delay = started + sent / bytes_per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield chunk


async def apaced(chunks: AsyncIterator[bytes], bytes_per_second: float) -> AsyncIterator[bytes]:
    """``paced`` for asyncio: waits without blocking the event loop."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        delay = started + sent / bytes_per_second - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield chunk
