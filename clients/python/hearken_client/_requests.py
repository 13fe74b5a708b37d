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


def stream_config(audio_format: AudioFormat, config: Config) -> pb.RecognitionConfig:
    """A stream's proto config: ``Config.resumable`` applies to streams only."""
    proto = audio_format.to_proto(config)
    proto.resumable = config.resumable
    return proto


#: Says the audio is over, before the half-close.
END_OF_STREAM = pb.StreamingRecognizeRequest(control=pb.Control(end_of_stream=pb.EndOfStream()))


def stream_requests(
    opening: pb.StreamingRecognizeRequest, audio: Iterator[tuple[int, bytes]], end_of_stream: bool
) -> Iterator[pb.StreamingRecognizeRequest]:
    """The opening message first (the config, or ``ResumeSession`` when continuing a
    session), as the server requires, then the audio chunks with their numbers (from 1 in a
    session). The stream ends with the iterator: gRPC half-closes it, and the server
    finalizes. A resumable stream says ``EndOfStream`` first (``end_of_stream``): to its
    server a bare half-close may be a proxy passing on a broken connection, so it waits a
    moment before taking it as the end of the audio."""
    yield opening
    for sequence, data in audio:
        yield pb.StreamingRecognizeRequest(audio=pb.AudioChunk(data=data, sequence=sequence))
    if end_of_stream:
        yield END_OF_STREAM


async def astream_requests(
    opening: pb.StreamingRecognizeRequest, audio: AsyncIterator[tuple[int, bytes]], end_of_stream: bool
) -> AsyncIterator[pb.StreamingRecognizeRequest]:
    """``stream_requests`` for asyncio."""
    yield opening
    async for sequence, data in audio:
        yield pb.StreamingRecognizeRequest(audio=pb.AudioChunk(data=data, sequence=sequence))
    if end_of_stream:
        yield END_OF_STREAM


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
