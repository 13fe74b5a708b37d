"""The client's own rules, without a server: addresses, the retry policy, whole samples and
the replay of audio a refused attempt took."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from hearken_client import Retry
from hearken_client._replay import AsyncReplay, Replay
from hearken_client.audio import AudioFormat, SampleCutter
from hearken_client.connection import Target, parse_server


def test_server_addresses() -> None:
    assert parse_server("127.0.0.1:50071") == Target("127.0.0.1:50071", tls=False)
    assert parse_server("http://speech.local") == Target("speech.local:50051", tls=False)
    assert parse_server("https://speech.example.com") == Target("speech.example.com:443", tls=True)
    assert parse_server("grpcs://[::1]:8443/") == Target("[::1]:8443", tls=True)
    for wrong in ("ftp://host:1", "http://host:1/v1", "host:port"):
        with pytest.raises(ValueError, match="server"):
            parse_server(wrong)


class Refusal(grpc.RpcError):
    """What a failed call raises: a code, a message and trailers."""

    def __init__(self, code: grpc.StatusCode, pushback: str | None = None) -> None:
        self._code = code
        self._trailers = () if pushback is None else (("grpc-retry-pushback-ms", pushback),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"

    def trailing_metadata(self):
        return self._trailers


def test_retries_follow_the_servers_hint() -> None:
    retry = Retry(attempts=2, max_wait=10, backoff=0.5)
    exhausted, unavailable = grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE
    assert retry.wait(Refusal(exhausted, "2000"), 0) == 2.0
    assert retry.wait(Refusal(exhausted, "60000"), 0) == 10, "capped"
    assert retry.wait(Refusal(exhausted, "2000"), 2) is None, "out of attempts"
    assert retry.wait(Refusal(exhausted), 0) is None, "no hint: the same request fails again"
    assert retry.wait(Refusal(exhausted, "-1"), 0) is None, "the server says: do not retry"
    assert retry.wait(Refusal(unavailable), 1) == 1.0, "a failed connection backs off"
    assert retry.wait(Refusal(grpc.StatusCode.INVALID_ARGUMENT, "1000"), 0) is None


def test_pcm_is_cut_at_whole_sample_frames() -> None:
    cutter = SampleCutter(AudioFormat(1, sample_rate=100, channels=2))  # 10 frames of 4 bytes a message
    assert cutter.cut(b"abcdef") == [b"abcd"]
    assert cutter.cut(b"g") == []
    assert cutter.cut(b"h" + bytes(44)) == [b"efgh" + bytes(36), bytes(8)]


def test_replay_resends_what_a_refused_attempt_took() -> None:
    replay = Replay(iter([b"1", b"2", b"3"]))
    first = replay.attempt()
    assert [next(first), next(first)] == [b"1", b"2"]
    second = replay.attempt()
    assert list(first) == [], "a superseded attempt stops"
    assert next(second) == b"1"
    replay.stop_recording()
    assert list(second) == [b"2", b"3"]
    assert replay._log == [b"1", None, None], "sent chunks are let go once results flow"


def test_async_replay_keeps_a_chunk_whose_attempt_was_cancelled() -> None:
    async def run() -> None:
        arrived = asyncio.Event()

        async def source():
            yield b"1"
            await arrived.wait()
            yield b"2"

        replay = AsyncReplay(source())
        first = replay.attempt()
        assert await first.__anext__() == b"1"
        waiting = asyncio.ensure_future(first.__anext__())
        await asyncio.sleep(0.01)
        waiting.cancel()  # the attempt failed while its pull was in flight
        second = replay.attempt()
        arrived.set()
        assert [chunk async for chunk in second] == [b"1", b"2"]

    asyncio.run(run())
