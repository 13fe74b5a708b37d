"""The client's own rules, without a server: addresses, the retry policy, whole samples, the
replay of audio a refused attempt took, and resuming a stream whose connection broke (what is
buffered, what is handed on, when to give up), down to a whole stream against a scripted
server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from hearken_client import AsyncClient, Client, Config, HearkenError, Retry
from hearken_client._proto import speech_pb2 as pb
from hearken_client._replay import AsyncReplay, Replay
from hearken_client._resume import ROUTE_HEADER, StreamState
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
        return "refused" if self._code != grpc.StatusCode.UNAVAILABLE else "Connection reset by peer"

    def trailing_metadata(self):
        return self._trailers


def test_the_streaming_policy_maps_to_the_proto_and_a_typo_is_refused() -> None:
    assert Config().to_proto(pb.LINEAR16).policy == pb.STREAMING_POLICY_UNSPECIFIED
    assert Config(policy="align-att").to_proto(pb.LINEAR16).policy == pb.ALIGN_ATT
    assert Config(policy="local-agreement").to_proto(pb.LINEAR16).policy == pb.LOCAL_AGREEMENT
    with pytest.raises(ValueError, match="unknown policy 'alignatt'"):
        Config(policy="alignatt")


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
    assert [next(first), next(first)] == [(1, b"1"), (2, b"2")]
    second = replay.attempt()
    assert list(first) == [], "a superseded attempt stops"
    assert next(second) == (1, b"1")
    replay.results_flow()
    assert list(second) == [(2, b"2"), (3, b"3")]
    assert len(replay.log) == 0, "sent chunks are let go once results flow"


def test_async_replay_keeps_a_chunk_whose_attempt_was_cancelled() -> None:
    async def run() -> None:
        arrived = asyncio.Event()

        async def source():
            yield b"1"
            await arrived.wait()
            yield b"2"

        replay = AsyncReplay(source())
        first = replay.attempt()
        assert await first.__anext__() == (1, b"1")
        waiting = asyncio.ensure_future(first.__anext__())
        await asyncio.sleep(0.01)
        waiting.cancel()  # the attempt failed while its pull was in flight
        second = replay.attempt()
        arrived.set()
        assert [chunk async for chunk in second] == [(1, b"1"), (2, b"2")]

    asyncio.run(run())


def test_a_resumable_stream_buffers_only_what_the_server_has_not_acknowledged() -> None:
    replay = Replay(iter([b"1", b"2", b"3", b"4", b"5", b"6"]))
    first = replay.attempt()
    assert [next(first), next(first), next(first)] == [(1, b"1"), (2, b"2"), (3, b"3")]
    replay.keep_until_acknowledged()  # SessionStarted gave a resume token
    replay.results_flow()  # the first update does not drop anything now
    assert len(replay.log) == 3
    replay.acknowledge(2)  # AudioAck
    assert (replay.log.first, len(replay.log), replay.log.buffered) == (3, 1, 1)
    assert next(first) == (4, b"4")

    # The connection broke; the resumed call sends every unacknowledged chunk at once, then
    # goes on with the source, and SessionResumed skips what the server had after all.
    resumed = replay.attempt()
    assert next(resumed) == (3, b"3")
    replay.acknowledge(4)  # SessionResumed.last_audio_sequence
    assert list(resumed) == [(5, b"5"), (6, b"6")], "acknowledged chunks are not sent again"
    replay.acknowledge(99)  # more than was ever sent: everything, no more
    assert (replay.log.first, len(replay.log)) == (7, 0)


def started(sequence: int, token: str = "tok") -> pb.StreamingRecognizeResponse:
    message = pb.SessionStarted(model="tiny.en", resume_token=token, resume_window_seconds=10)
    return pb.StreamingRecognizeResponse(session_id="s1", sequence=sequence, session_started=message)


def update(sequence: int, utterance: int, revision: int, text: str, final: bool = False):
    committed, tentative = (text, "") if final else ("", text)
    message = pb.TranscriptUpdate(
        utterance_id=utterance, revision=revision, committed=committed, tentative=tentative, is_final=final
    )
    return pb.StreamingRecognizeResponse(session_id="s1", sequence=sequence, transcript=message)


def ack(sequence: int, chunk: int) -> pb.StreamingRecognizeResponse:
    message = pb.AudioAck(sequence=chunk)
    return pb.StreamingRecognizeResponse(session_id="s1", sequence=sequence, audio_ack=message)


def resumed(sequence: int, chunk: int, replayed: int) -> pb.StreamingRecognizeResponse:
    message = pb.SessionResumed(last_audio_sequence=chunk, replayed_responses=replayed, detached_seconds=0.5)
    return pb.StreamingRecognizeResponse(session_id="s1", sequence=sequence, session_resumed=message)


def test_a_resumed_session_hands_each_response_on_once() -> None:
    state, audio = StreamState(resumable=True, backoff=0.5), Replay(iter([b"a", b"b", b"c"]))
    first = state.opening(pb.RecognitionConfig(resumable=True))
    assert first.WhichOneof("request") == "config"
    route = dict(state.metadata((("authorization", "Bearer k"),)))[ROUTE_HEADER]
    assert len(route) == 32
    chunks = audio.attempt()
    assert [next(chunks), next(chunks)] == [(1, b"a"), (2, b"b")]
    assert state.receive(started(1), audio).model == "tiny.en"
    assert state.receive(update(2, 1, 1, " He"), audio).text == " He"
    assert state.receive(ack(3, 1), audio) is None
    assert (state.token, state.window, state.last_sequence, audio.log.first) == ("tok", 10, 3, 2)

    assert state.can_resume(Refusal(grpc.StatusCode.UNAVAILABLE))
    assert state.next_wait(Refusal(grpc.StatusCode.UNAVAILABLE), now=100.0) == 0.5
    opening = state.opening(pb.RecognitionConfig())
    assert opening.resume == pb.ResumeSession(token="tok", last_response_sequence=3)
    assert dict(state.metadata(()))[ROUTE_HEADER] == route, "the resumed call goes to the same replica"

    # The server resends what came after 3; anything older a confused replay repeats is skipped.
    assert state.receive(update(2, 1, 1, " He"), audio) is None
    assert state.receive(update(4, 1, 2, " He began"), audio).revision == 2
    assert state.receive(update(4, 1, 2, " He began"), audio) is None
    assert state.receive(resumed(5, chunk=2, replayed=1), audio) is None
    assert (state.resumes, state.resuming, audio.log.first) == (1, False, 3)
    assert state.receive(update(6, 1, 3, " He began.", final=True), audio).is_final

    state.fresh()  # a retry of a refused session starts over, maybe on another replica
    assert (state.token, state.last_sequence) == ("", 0)
    assert dict(state.metadata(()))[ROUTE_HEADER] != route


def test_only_a_broken_connection_is_resumed_and_only_within_the_window() -> None:
    state, audio = StreamState(resumable=True, backoff=0.5), Replay(iter([]))
    state.opening(pb.RecognitionConfig())
    broken = Refusal(grpc.StatusCode.UNAVAILABLE)
    assert not state.can_resume(broken), "no token yet: a refused start is retried as before"
    state.receive(started(1), audio)
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        assert state.can_resume(Refusal(code)), code
    draining = Refusal(grpc.StatusCode.UNAVAILABLE, "1000")
    assert not state.can_resume(draining), "the server's own UNAVAILABLE, with a hint"
    for code in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
    ):
        assert not state.can_resume(Refusal(code)), code
    waits = [state.next_wait(broken, now=t) for t in (100.0, 100.6, 101.7, 103.8, 109.5, 110.0)]
    assert waits == [0.5, 1.0, 2.0, 2.0, pytest.approx(0.5), None], "backs off; gives up after the window"
    busy = Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "1000")
    assert state.can_resume(busy), "while resuming, a refusal the server says to retry is"

    not_asked = StreamState(resumable=False, backoff=0.5)
    not_asked.opening(pb.RecognitionConfig())
    not_asked.receive(started(1, token="unasked"), audio)
    assert not not_asked.can_resume(broken) and not not_asked.metadata(())


class ScriptedCall:
    """One StreamingRecognize call against a scripted server: reads the client's requests as
    gRPC's sending thread would, answers from ``script``, and fails like a cut connection
    where the script says ``BREAK`` (or with any other error it holds)."""

    BREAK = Refusal(grpc.StatusCode.UNAVAILABLE)

    def __init__(
        self, requests: Iterator[pb.StreamingRecognizeRequest], script: list, server: ScriptedServer
    ) -> None:
        self._requests, self._script, self._server = requests, list(script), server

    def __iter__(self) -> ScriptedCall:
        return self

    def __next__(self) -> pb.StreamingRecognizeResponse:
        while self._script:
            step = self._script.pop(0)
            if isinstance(step, grpc.RpcError):
                raise step
            if isinstance(step, int):  # read requests until chunk `step` is in
                while self._server.chunks[-1:] != [step]:
                    self._server.receive(next(self._requests))
                continue
            if step == "rest":
                for request in self._requests:
                    self._server.receive(request)
                continue
            return step
        raise StopIteration

    def cancel(self) -> None:
        pass


class ScriptedServer:
    """A stub whose calls follow one script each, recording what the client sent."""

    def __init__(self, *scripts: list) -> None:
        self._scripts = list(scripts)
        self.openings: list[tuple[pb.StreamingRecognizeRequest, dict[str, str]]] = []
        self.chunks: list[int] = []  # sequence numbers of the chunks kept, as a server skips
        self.end_of_stream = False

    def StreamingRecognize(self, requests, metadata) -> ScriptedCall:
        self.openings.append((next(requests), dict(metadata)))
        return ScriptedCall(requests, self._scripts.pop(0), self)

    def receive(self, request: pb.StreamingRecognizeRequest) -> None:
        if request.control.HasField("end_of_stream"):
            self.end_of_stream = True
            return
        assert not self.end_of_stream, "audio after EndOfStream"
        sequence = request.audio.sequence
        if sequence > (self.chunks[-1] if self.chunks else 0):
            assert sequence == len(self.chunks) + 1, f"chunk {sequence} after {self.chunks[-1:]}: a gap"
            self.chunks.append(sequence)


def test_a_stream_resumes_its_session_unseen_by_the_caller() -> None:
    """The connection breaks after response 3 and chunk 3; the caller gets every update once,
    in order, and the server every chunk once, in order (the resumed call resends chunk 3,
    unacknowledged, and the server skips it)."""
    server = ScriptedServer(
        [started(1), 2, update(2, 1, 1, " He"), ack(3, 2), 3, ScriptedCall.BREAK],
        [
            update(2, 1, 1, " He"),  # a replay older than asked for: skipped
            update(4, 1, 2, " He began"),
            resumed(5, chunk=3, replayed=1),
            "rest",
            update(6, 1, 3, " He began.", final=True),
        ],
    )
    with Client("127.0.0.1:9", retry=Retry(backoff=0.01)) as client:
        client._stub = server
        stream = client.stream([b"\0\0" * 1600] * 6, Config())
        updates = [(u.utterance_id, u.revision) for u in stream]
    assert updates == [(1, 1), (1, 2), (1, 3)]
    assert stream.resumes == 1
    assert server.chunks == [1, 2, 3, 4, 5, 6] and server.end_of_stream
    (first, first_headers), (second, second_headers) = server.openings
    assert first.config.resumable and second.resume.last_response_sequence == 3
    assert first_headers[ROUTE_HEADER] == second_headers[ROUTE_HEADER]
    assert (stream._audio.log.first, len(stream._audio.log)) == (4, 3), "kept until acknowledged"


class AsyncScriptedCall(ScriptedCall):
    """``ScriptedCall`` as grpc.aio's calls are iterated: with ``async for``."""

    def __aiter__(self) -> AsyncScriptedCall:
        return self

    async def __anext__(self) -> pb.StreamingRecognizeResponse:
        if self._metadata is not None:  # grpc.aio sends the opening with the rest
            self._server.openings.append((await self._requests.__anext__(), self._metadata))
            self._metadata = None
        while self._script:
            step = self._script.pop(0)
            if isinstance(step, grpc.RpcError):
                raise step
            if isinstance(step, int):
                while self._server.chunks[-1:] != [step]:
                    self._server.receive(await self._requests.__anext__())
            elif step == "rest":
                async for request in self._requests:
                    self._server.receive(request)
            else:
                return step
        raise StopAsyncIteration


class AsyncScriptedServer(ScriptedServer):
    def StreamingRecognize(self, requests, metadata) -> AsyncScriptedCall:
        call = AsyncScriptedCall(requests, self._scripts.pop(0), self)
        call._metadata = dict(metadata)
        return call


def test_the_asyncio_stream_resumes_too() -> None:
    server = AsyncScriptedServer(
        [started(1), 1, update(2, 1, 1, " He"), ack(3, 1), 2, ScriptedCall.BREAK],
        [update(4, 1, 2, " He began"), resumed(5, chunk=2, replayed=1), "rest", update(6, 1, 3, " He", True)],
    )

    async def run() -> tuple[list[tuple[int, int]], int]:
        async with AsyncClient("127.0.0.1:9", retry=Retry(backoff=0.01)) as client:
            client._stub = server
            stream = client.stream([b"\0\0" * 1600] * 4, Config())
            return [(u.utterance_id, u.revision) async for u in stream], stream.resumes

    assert asyncio.run(run()) == ([(1, 1), (1, 2), (1, 3)], 1)
    assert server.chunks == [1, 2, 3, 4] and server.end_of_stream, "every chunk once, in order, then the end"
    (first, first_headers), (second, second_headers) = server.openings
    assert first.config.resumable and second.resume.last_response_sequence == 3
    assert first_headers[ROUTE_HEADER] == second_headers[ROUTE_HEADER]


def test_a_failed_resume_says_why() -> None:
    server = ScriptedServer(
        [started(1), 1, update(2, 1, 1, " He"), ScriptedCall.BREAK], [Refusal(grpc.StatusCode.NOT_FOUND)]
    )
    seen = []
    with Client("127.0.0.1:9", retry=Retry(backoff=0.01)) as client, pytest.raises(HearkenError) as failed:
        client._stub = server
        for u in client.stream([b"\0\0" * 1600] * 3, Config()):
            seen.append(u.revision)
    assert seen == [1]
    assert failed.value.code == grpc.StatusCode.NOT_FOUND
    broke = "UNAVAILABLE: Connection reset by peer"
    assert f"resuming the session after its connection broke ({broke}) failed" in str(failed.value)
