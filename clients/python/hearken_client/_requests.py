"""What a call sends: any supported audio input turned into a stream's chunks, or into one
``RecognizeRequest``, and the request messages of a stream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Union

from ._proto import speech_pb2 as pb
from .audio import (
    AudioFormat,
    PathLike,
    apaced,
    awhole_samples,
    open_file,
    paced,
    pcm16,
    read_pipe,
    sniff,
    whole_samples,
)
from .config import Config

#: A stream's audio: a file, raw PCM16 bytes, a binary pipe (``sys.stdin.buffer``) or an
#: iterable of raw PCM16 chunks, as described by ``Config.sample_rate`` and ``channels``.
Audio = Union[PathLike, bytes, bytearray, memoryview, BinaryIO, Iterable[bytes]]
#: The asyncio client also takes async iterables of raw PCM16 chunks.
AsyncAudio = Union[Audio, AsyncIterable[bytes]]


def _is_path(audio: object) -> bool:
    return isinstance(audio, (str, os.PathLike))


def chunks(audio: Audio, config: Config, realtime: bool) -> tuple[AudioFormat, Iterator[bytes]]:
    """The format and chunks of ``audio``; ``realtime`` paces PCM as it would be spoken."""
    if _is_path(audio):
        audio_format, pieces = open_file(audio)  # type: ignore[arg-type]
    else:
        audio_format = pcm16(config)
        pieces = whole_samples(_raw(audio, audio_format), audio_format)
    if realtime and audio_format.bytes_per_second:
        pieces = paced(pieces, audio_format.bytes_per_second)
    return audio_format, pieces


def achunks(audio: AsyncAudio, config: Config, realtime: bool) -> tuple[AudioFormat, AsyncIterator[bytes]]:
    """``chunks`` for asyncio: blocking sources (files, pipes, iterables) are read on a
    worker thread so they never stall the event loop."""
    if isinstance(audio, AsyncIterable):
        audio_format = pcm16(config)
        pieces: AsyncIterator[bytes] = awhole_samples(audio, audio_format)
    else:
        audio_format, blocking = chunks(audio, config, realtime=False)
        pieces = _in_thread(blocking)
    if realtime and audio_format.bytes_per_second:
        pieces = apaced(pieces, audio_format.bytes_per_second)
    return audio_format, pieces


def _raw(audio: Audio, audio_format: AudioFormat) -> Iterable[bytes]:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return [bytes(audio)]
    if hasattr(audio, "read"):
        return read_pipe(audio, audio_format)  # type: ignore[arg-type]
    if isinstance(audio, Iterable) and not isinstance(audio, str):
        return audio
    raise TypeError(
        f"cannot stream a {type(audio).__name__}: give a path, bytes, a pipe or an iterable of bytes"
    )


async def _in_thread(blocking: Iterator[bytes]) -> AsyncIterator[bytes]:
    end = object()
    while (chunk := await asyncio.to_thread(next, blocking, end)) is not end:
        yield chunk  # type: ignore[misc]


def stream_requests(
    config: pb.RecognitionConfig, audio: Iterator[bytes]
) -> Iterator[pb.StreamingRecognizeRequest]:
    """The config first, as the server requires, then the audio numbered from 1. The stream
    ends with the iterator: gRPC half-closes it, and the server finalizes."""
    yield pb.StreamingRecognizeRequest(config=config)
    for sequence, data in enumerate(audio, 1):
        yield pb.StreamingRecognizeRequest(audio=pb.AudioChunk(data=data, sequence=sequence))


async def astream_requests(
    config: pb.RecognitionConfig, audio: AsyncIterator[bytes]
) -> AsyncIterator[pb.StreamingRecognizeRequest]:
    """``stream_requests`` for asyncio."""
    yield pb.StreamingRecognizeRequest(config=config)
    sequence = 0
    async for data in audio:
        sequence += 1
        yield pb.StreamingRecognizeRequest(audio=pb.AudioChunk(data=data, sequence=sequence))


def recognize_request(
    audio: Union[PathLike, bytes, bytearray, memoryview], config: Config
) -> pb.RecognizeRequest:
    """A whole recording in one message: a file or container bytes as they are (the server
    sniffs the container), other bytes as raw PCM16 at the config's rate and channels."""
    if _is_path(audio):
        data = Path(audio).read_bytes()  # type: ignore[arg-type]
        return pb.RecognizeRequest(config=config.to_proto(pb.AUTO), audio=data)
    if not isinstance(audio, (bytes, bytearray, memoryview)):
        raise TypeError(f"recognize takes a path or bytes, not a {type(audio).__name__}")
    data = bytes(audio)
    if sniff(data[:12]) is not None:
        return pb.RecognizeRequest(config=config.to_proto(pb.AUTO), audio=data)
    return pb.RecognizeRequest(config=pcm16(config).to_proto(config), audio=data)
