"""The asyncio client: the same calls as ``Client``, awaited, and streams iterated with
``async for``. Create it inside the running event loop (gRPC's asyncio channels belong to
one loop). Streams resume a broken connection as ``Client``'s do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any, Optional, Union

import grpc
import grpc.aio

from . import connection
from ._proto import speech_pb2 as pb
from ._proto.speech_pb2_grpc import SpeechStub
from ._replay import AsyncReplay
from ._requests import AsyncAudio, achunks, astream_requests, recognize_request, stream_config
from ._resume import END_SESSION_TIMEOUT, StreamState, end_session_requests, resume_wait
from .audio import PathLike
from .client import log
from .config import Config
from .errors import HearkenError, from_rpc
from .retry import Retry
from .types import ModelInfo, SessionInfo, Transcript, Update


class AsyncClient:
    """A connection to one hearken server, for asyncio; see ``Client`` for the options."""

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
        self._channel = connection.aio_channel(connection.parse_server(server), ca)
        self._stub = SpeechStub(self._channel)

    async def list_models(self, *, timeout: Optional[float] = 30) -> list[ModelInfo]:
        """The models the server knows, the one it serves first."""
        response = await self._unary(self._stub.ListModels, pb.ListModelsRequest(), timeout)
        return [ModelInfo.from_proto(m) for m in response.models]

    async def recognize(
        self,
        audio: Union[PathLike, bytes],
        config: Config = Config(),
        *,
        timeout: Optional[float] = None,
    ) -> Transcript:
        """The transcript of a whole recording; see ``Client.recognize``."""
        request = await asyncio.to_thread(recognize_request, audio, config)
        return Transcript.from_proto(await self._unary(self._stub.Recognize, request, timeout))

    def stream(
        self, audio: AsyncAudio, config: Config = Config(), *, realtime: bool = False
    ) -> AsyncTranscriptStream:
        """Streams ``audio`` (anything ``Client.stream`` takes, or an async iterable of PCM16
        chunks) and yields updates with ``async for``."""
        audio_format, pieces = achunks(audio, config, realtime)
        state = StreamState(config.resumable, self.retry.backoff)
        return AsyncTranscriptStream(self, stream_config(audio_format, config), AsyncReplay(pieces), state)

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, method: Any, request: object, timeout: Optional[float]) -> Any:
        """Calls ``method``, retrying the refusals ``retry`` allows."""
        retried = 0
        while True:
            try:
                return await method(request, metadata=self._metadata, timeout=timeout)
            except grpc.aio.AioRpcError as error:
                wait = self.retry.wait(error, retried)
                if wait is None:
                    raise self._error(error, retried) from error
                await self._before_retry(error, wait, retried)
                retried += 1

    def _error(self, error: grpc.RpcError, retried: int, notes: tuple[str, ...] = ()) -> HearkenError:
        return from_rpc(error, self.server, has_key=self._key is not None, retried=retried, notes=notes)

    async def _end_session(self, state: StreamState) -> None:
        """``Client._end_session`` for asyncio."""
        requests = end_session_requests(state)
        metadata = state.metadata(self._metadata)
        try:
            call = self._stub.StreamingRecognize(iter(requests), metadata=metadata, timeout=END_SESSION_TIMEOUT)
            async for _ in call:
                pass
        except grpc.RpcError as error:
            log.debug("ending the cancelled session on %s: %s", self.server, error.code().name)

    async def _before_retry(self, error: grpc.aio.AioRpcError, wait: float, retried: int) -> None:
        log.warning(
            "hearken at %s: %s: %s; retrying in %.1f s (retry %d of %d)",
            self.server,
            error.code().name,
            error.details(),
            wait,
            retried + 1,
            self.retry.attempts,
        )
        await asyncio.sleep(wait)


class AsyncTranscriptStream(AsyncIterator[Update]):
    """The updates of one stream, for ``async for``; see ``TranscriptStream``."""

    def __init__(
        self, client: AsyncClient, config: pb.RecognitionConfig, audio: AsyncReplay, state: StreamState
    ) -> None:
        self.session: Optional[SessionInfo] = None
        self._client = client
        self._config = config
        self._audio = audio
        self._state = state
        self._call: Optional[grpc.aio.StreamStreamCall] = None
        self._cancelled = False
        self._ending: Optional[asyncio.Task[None]] = None
        self._updates = self._run()

    @property
    def resumes(self) -> int:
        """How many times the stream's session was resumed on a new connection."""
        return self._state.resumes

    def __aiter__(self) -> AsyncTranscriptStream:
        return self

    async def __anext__(self) -> Update:
        return await self._updates.__anext__()

    def cancel(self) -> None:
        """Ends the stream; iteration stops quietly. A resumable stream's session is ended
        on the server too, as ``TranscriptStream.cancel`` says, by a task (awaited when the
        ``async with`` block exits)."""
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()
        if self._state.token and self._ending is None:
            try:
                self._ending = asyncio.get_running_loop().create_task(
                    self._client._end_session(self._state)
                )
            except RuntimeError:
                pass  # no event loop: the resume window frees the session

    async def __aenter__(self) -> AsyncTranscriptStream:
        return self

    async def __aexit__(
        self, kind: Optional[type], value: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.cancel()
        await self._updates.aclose()
        await self._audio.aclose()
        if self._ending is not None:
            await self._ending

    async def _run(self) -> AsyncGenerator[Update, None]:
        client, state, retried, yielded = self._client, self._state, 0, False
        while not self._cancelled:
            opening = state.opening(self._config)
            requests = astream_requests(opening, self._audio.attempt(), self._config.resumable)
            metadata = state.metadata(client._metadata)
            self._call = call = client._stub.StreamingRecognize(requests, metadata=metadata)
            try:
                async for response in call:
                    event = state.receive(response, self._audio)
                    if isinstance(event, SessionInfo):
                        self.session = event
                    elif isinstance(event, Update):
                        yielded = True
                        yield event
                state.token = ""  # the session is over: nothing to resume or cancel
                return
            except (grpc.RpcError, asyncio.CancelledError) as error:
                if self._audio.failure is not None:
                    raise self._audio.failure from None  # gRPC cancels the call for it
                if self._cancelled:
                    return
                if isinstance(error, asyncio.CancelledError):
                    raise
                if state.token:
                    await asyncio.sleep(resume_wait(state, error, client))
                    continue
                wait = None if yielded else client.retry.wait(error, retried)
                if wait is None:
                    raise client._error(error, retried) from error
                await client._before_retry(error, wait, retried)
                retried += 1
            finally:
                call.cancel()
