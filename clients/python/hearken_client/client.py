"""The blocking client: ``Client(server).stream(...)``, ``recognize(...)``, ``list_models()``.

gRPC's own thread sends a stream's audio while the caller's thread reads its updates, so a
pipe or a paced file never holds results back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import Any, Optional, Union

import grpc

from . import connection
from ._proto import speech_pb2 as pb
from ._proto.speech_pb2_grpc import SpeechStub
from ._replay import Replay
from ._requests import Audio, chunks, recognize_request, stream_requests
from .audio import PathLike
from .config import Config
from .errors import HearkenError, from_rpc
from .retry import Retry
from .types import ModelInfo, SessionInfo, Transcript, Update, stream_event

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
        """
        audio_format, pieces = chunks(audio, config, realtime)
        return TranscriptStream(self, audio_format.to_proto(config), Replay(pieces))

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

    def _error(self, error: grpc.RpcError, retried: int) -> HearkenError:
        return from_rpc(error, self.server, has_key=self._key is not None, retried=retried)

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
    (model, device), once its first response is in. Leaving a ``with`` block, or ``cancel``,
    ends the stream early."""

    def __init__(self, client: Client, config: pb.RecognitionConfig, audio: Replay) -> None:
        self.session: Optional[SessionInfo] = None
        self._client = client
        self._config = config
        self._audio = audio
        self._call: Optional[grpc.Call] = None
        self._cancelled = False
        self._updates = self._run()

    def __iter__(self) -> TranscriptStream:
        return self

    def __next__(self) -> Update:
        return next(self._updates)

    def cancel(self) -> None:
        """Ends the stream; iteration stops quietly. Safe from another thread."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> TranscriptStream:
        return self

    def __exit__(
        self, kind: Optional[type], value: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.cancel()

    def _run(self) -> Generator[Update, None, None]:
        client, retried, yielded = self._client, 0, False
        while not self._cancelled:
            requests = stream_requests(self._config, self._audio.attempt())
            self._call = call = client._stub.StreamingRecognize(requests, metadata=client._metadata)
            try:
                for response in call:
                    event = stream_event(response)
                    if isinstance(event, SessionInfo):
                        self.session = event
                    elif isinstance(event, Update):
                        yielded = True
                        self._audio.stop_recording()
                        yield event
                return
            except grpc.RpcError as error:
                if self._audio.failure is not None:
                    raise self._audio.failure from None  # gRPC reports it as CANCELLED
                if self._cancelled:
                    return
                wait = None if yielded else client.retry.wait(error, retried)
                if wait is None:
                    raise client._error(error, retried) from error
                client._before_retry(error, wait, retried)
                retried += 1
            finally:
                call.cancel()
