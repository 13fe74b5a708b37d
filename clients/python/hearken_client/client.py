"""The blocking client: ``Client(server).stream(...)``, ``recognize(...)``, ``list_models()``.

gRPC's own thread sends a stream's audio while the caller's thread reads its updates, so a
pipe or a paced file never holds results back. A stream whose connection breaks resumes its
session on a new one (``Config.resumable``, see ``_resume``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any, Optional, Union

import grpc

from . import connection
from ._proto import speech_pb2 as pb
from ._proto.speech_pb2_grpc import SpeechStub
from ._replay import Replay
from ._requests import Audio, chunks, recognize_request, stream_config, stream_requests
from ._resume import END_SESSION_TIMEOUT, StreamState, end_session_requests, resume_wait
from .audio import PathLike
from .config import Config
from .errors import HearkenError, from_rpc
from .retry import Retry
from .types import ModelInfo, SessionInfo, Transcript, Update

log = logging.getLogger("hearken_client")


class Client:
    """A connection to one hearken server.

    ``server`` is ``HOST:PORT`` or a URL (``https://`` or ``grpcs://`` for TLS, trusting ``ca``
    if given); ``api_key`` defaults to ``HEARKEN_API_KEY``. Failures raise ``HearkenError``;
    refusals the server says are worth retrying are retried as ``retry`` allows.
    """

    def __init__(
        self,
        server: str = connection.DEFAULT_SERVER,
        *,
        api_key: Optional[str] = None,
        ca: Optional[PathLike] = None,
        retry: Retry = Retry(),
    ) -> None:
        self.server = server
        self.retry = retry
        self._key = connection.api_key(api_key)
        self._metadata = connection.metadata(self._key)
        self._channel = connection.channel(connection.parse_server(server), ca)
        self._stub = SpeechStub(self._channel)

    def list_models(self, *, timeout: Optional[float] = 30) -> list[ModelInfo]:
        """The models the server knows, the one it serves first."""
        response = self._unary(self._stub.ListModels, pb.ListModelsRequest(), timeout)
        return [ModelInfo.from_proto(m) for m in response.models]

    def recognize(
        self,
        audio: Union[PathLike, bytes],
        config: Config = Config(),
        *,
        timeout: Optional[float] = None,
    ) -> Transcript:
        """The transcript of a whole recording: a file, container bytes, or raw PCM16 bytes
        as ``config`` describes."""
        request = recognize_request(audio, config)
        return Transcript.from_proto(self._unary(self._stub.Recognize, request, timeout))

    def stream(self, audio: Audio, config: Config = Config(), *, realtime: bool = False) -> TranscriptStream:
        """Streams ``audio`` and yields transcript updates while the server sends them.

        ``audio`` is a file, raw PCM16 bytes, a pipe or an iterable of PCM16 chunks (at
        ``config.sample_rate`` and ``channels``). ``realtime`` sends PCM no faster than it
        would be spoken, as a microphone does; otherwise it goes as fast as the server reads.
        With ``config.resumable`` (the default) a broken connection is resumed unseen.
        """
        audio_format, pieces = chunks(audio, config, realtime)
        state = StreamState(config.resumable, self.retry.backoff)
        return TranscriptStream(self, stream_config(audio_format, config), Replay(pieces), state)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, method: grpc.UnaryUnaryMultiCallable, request: object, timeout: Optional[float]) -> Any:
        """Calls ``method``, retrying the refusals ``retry`` allows."""
        retried = 0
        while True:
            try:
                return method(request, metadata=self._metadata, timeout=timeout)
            except grpc.RpcError as error:
                wait = self.retry.wait(error, retried)
                if wait is None:
                    raise self._error(error, retried) from error
                self._before_retry(error, wait, retried)
                retried += 1

    def _end_session(self, state: StreamState) -> None:
        """Ends a cancelled resumable stream's session on the server (``end_session_requests``);
        if the server cannot be reached, its resume window frees the session."""
        requests = end_session_requests(state)
        metadata = state.metadata(self._metadata)
        try:
            for _ in self._stub.StreamingRecognize(iter(requests), metadata=metadata, timeout=END_SESSION_TIMEOUT):
                pass
        except grpc.RpcError as error:
            log.debug("ending the cancelled session on %s: %s", self.server, error.code().name)

    def _error(self, error: grpc.RpcError, retried: int, notes: tuple[str, ...] = ()) -> HearkenError:
        return from_rpc(error, self.server, has_key=self._key is not None, retried=retried, notes=notes)

    def _before_retry(self, error: grpc.RpcError, wait: float, retried: int) -> None:
        log.warning(
            "hearken at %s: %s: %s; retrying in %.1f s (retry %d of %d)",
            self.server,
            error.code().name,
            error.details(),
            wait,
            retried + 1,
            self.retry.attempts,
        )
        time.sleep(wait)


class TranscriptStream(Iterator[Update]):
    """The updates of one stream, in order. ``session`` is what the server said it will do
    (model, device), once its first response is in; ``resumes`` counts the times a broken
    connection was resumed. Leaving a ``with`` block, or ``cancel``, ends the stream early."""

    def __init__(
        self, client: Client, config: pb.RecognitionConfig, audio: Replay, state: StreamState
    ) -> None:
        self.session: Optional[SessionInfo] = None
        self._client = client
        self._config = config
        self._audio = audio
        self._state = state
        self._call: Optional[grpc.Call] = None
        self._cancelled = threading.Event()
        self._updates = self._run()

    @property
    def resumes(self) -> int:
        """How many times the stream's session was resumed on a new connection."""
        return self._state.resumes

    def __iter__(self) -> TranscriptStream:
        return self

    def __next__(self) -> Update:
        return next(self._updates)

    def cancel(self) -> None:
        """Ends the stream; iteration stops quietly. Safe from another thread. A resumable
        stream's session is ended on the server too (a short call that takes it over and
        says ``Cancel``), so its session slot is free at once rather than held for the resume
        window, as it would be for a call that merely vanished."""
        self._cancelled.set()
        if self._call is not None:
            self._call.cancel()
        if self._state.token:
            self._client._end_session(self._state)

    def __enter__(self) -> TranscriptStream:
        return self

    def __exit__(
        self, kind: Optional[type], value: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.cancel()

    def _run(self) -> Generator[Update, None, None]:
        client, state, retried, yielded = self._client, self._state, 0, False
        while not self._cancelled.is_set():
            opening = state.opening(self._config)
            requests = stream_requests(opening, self._audio.attempt(), self._config.resumable)
            metadata = state.metadata(client._metadata)
            self._call = call = client._stub.StreamingRecognize(requests, metadata=metadata)
            try:
                for response in call:
                    event = state.receive(response, self._audio)
                    if isinstance(event, SessionInfo):
                        self.session = event
                    elif isinstance(event, Update):
                        yielded = True
                        yield event
                state.token = ""  # the session is over: nothing to resume or cancel
                return
            except grpc.RpcError as error:
                if self._audio.failure is not None:
                    raise self._audio.failure from None  # gRPC reports it as CANCELLED
                if self._cancelled.is_set():
                    return
                if state.token:
                    self._cancelled.wait(resume_wait(state, error, client))
                    continue
                wait = None if yielded else client.retry.wait(error, retried)
                if wait is None:
                    raise client._error(error, retried) from error
                client._before_retry(error, wait, retried)
                retried += 1
            finally:
                call.cancel()
