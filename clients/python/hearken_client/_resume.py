"""Resuming a stream whose connection broke.

A stream whose config asks for it (``Config.resumable``) gets a resume token in its
``SessionStarted``: when its connection then breaks, the server keeps the session for its
resume window, transcribing the audio it has and logging the responses. The client opens a new
call whose first message is ``ResumeSession{token, last_response_sequence}``; the server
resends the responses after that sequence, then ``SessionResumed`` with the highest audio
chunk it holds, and the client goes on sending audio (the chunks it still buffers at once: the
server skips those it has). Every call of the stream carries the same random
``x-hearken-session`` header, so a proxy that hashes it routes the resumed call to the replica
holding the session.

``StreamState`` is what both clients share: the bookkeeping of the responses (dedupe by
sequence, acknowledgements that free buffered audio) and when a failure is worth a resume.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Optional, Protocol, Union

import grpc

from ._proto import speech_pb2 as pb
from ._replay import AsyncReplay, Replay
from .errors import HearkenError
from .retry import RETRYABLE, retry_hint
from .types import SessionInfo, Update, stream_event

log = logging.getLogger("hearken_client")

#: The header a proxy hashes to send every call of one stream to the same replica.
ROUTE_HEADER = "x-hearken-session"
#: Codes of a call that ended because its connection did, not because the server chose to
#: end it: UNAVAILABLE (reset, refused, closed socket), and what gRPC makes of a stream a
#: proxy or the network cut short (UNKNOWN "Stream removed", INTERNAL "RST_STREAM",
#: CANCELLED from a peer's reset). The server's own refusals (UNAUTHENTICATED,
#: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) would only be refused again; those it says
#: are worth retrying carry a pushback hint, so a hinted status is the server's too.
BROKEN = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
    }
)
#: The resume window a server that sends a token without one is taken to have, seconds.
DEFAULT_WINDOW = 30.0
#: Longest wait between two tries to resume, seconds: a session is worth little once its
#: window is spent waiting.
MAX_RESUME_WAIT = 2.0


#: How long ending a cancelled session may take before it is left to the resume window.
END_SESSION_TIMEOUT = 5.0


def end_session_requests(state: StreamState) -> list[pb.StreamingRecognizeRequest]:
    """What ends a cancelled resumable stream's session on the server at once: a call that
    takes the session over, then says ``Cancel`` (the cancelled call itself may be stuck
    waiting for audio, and a bare cancel looks like a broken connection, which the server
    keeps the session through). Clears the token: the session is done with."""
    resume = pb.ResumeSession(token=state.token, last_response_sequence=state.last_sequence)
    state.token = ""
    cancel = pb.Control(cancel=pb.Cancel())
    return [pb.StreamingRecognizeRequest(resume=resume), pb.StreamingRecognizeRequest(control=cancel)]


def broken_connection(error: grpc.RpcError) -> bool:
    """Whether ``error`` says the connection broke rather than the server refusing."""
    return error.code() in BROKEN and retry_hint(error) is None


class StreamState:
    """The resumable side of one ``stream()`` call, across its calls: the session's token,
    the last response handed on, and the break being resumed, if any."""

    def __init__(self, resumable: bool, backoff: float) -> None:
        self._resumable = resumable
        self._backoff = backoff
        #: Successful resumes.
        self.resumes = 0
        self.token = ""
        self.window = 0.0
        #: Highest response sequence handed on; responses up to it are never handed on again.
        self.last_sequence = 0
        self.route = ""
        self._broke_at: Optional[float] = None
        #: The error that broke the connection being resumed, for the message if it fails.
        self.broke_with = ""
        self._tries = 0

    @property
    def resuming(self) -> bool:
        """The connection broke and the session has not been resumed yet."""
        return self._broke_at is not None

    def fresh(self) -> None:
        """A new session is about to start (the first call, or a retry of a refused one):
        nothing of an earlier one carries over, not even its route, so a retry may land on
        another replica."""
        self.token, self.window, self.last_sequence = "", 0.0, 0
        self.route = uuid.uuid4().hex
        self._broke_at, self._tries = None, 0

    def opening(self, config: pb.RecognitionConfig) -> pb.StreamingRecognizeRequest:
        """The first message of the next call: ``ResumeSession`` while resuming, else the
        config of a new session."""
        if self.resuming:
            resume = pb.ResumeSession(token=self.token, last_response_sequence=self.last_sequence)
            return pb.StreamingRecognizeRequest(resume=resume)
        self.fresh()
        return pb.StreamingRecognizeRequest(config=config)

    def metadata(self, base: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """``base`` and, for a resumable stream, the route header."""
        return (*base, (ROUTE_HEADER, self.route)) if self._resumable else base

    def receive(
        self, response: pb.StreamingRecognizeResponse, audio: Union[Replay, AsyncReplay]
    ) -> Union[SessionInfo, Update, None]:
        """What the stream hands on from ``response`` (as ``stream_event``), after its
        bookkeeping; None also for a response already handed on."""
        if response.sequence and response.sequence <= self.last_sequence:
            return None  # a resume replayed it again: the caller has it already
        self.last_sequence = max(self.last_sequence, response.sequence)
        kind = response.WhichOneof("event")
        if kind == "session_started":
            self._started(response.session_started, audio)
        elif kind == "audio_ack":
            audio.acknowledge(response.audio_ack.sequence)
        elif kind == "session_resumed":
            self._resumed(response.session_id, response.session_resumed, audio)
        elif kind == "transcript":
            audio.results_flow()
        return stream_event(response)

    def _started(self, started: pb.SessionStarted, audio: Union[Replay, AsyncReplay]) -> None:
        if self._resumable and started.resume_token:
            self.token = started.resume_token
            self.window = started.resume_window_seconds or DEFAULT_WINDOW
            audio.keep_until_acknowledged()

    def _resumed(
        self, session_id: str, resumed: pb.SessionResumed, audio: Union[Replay, AsyncReplay]
    ) -> None:
        audio.acknowledge(resumed.last_audio_sequence)
        self._broke_at, self._tries = None, 0
        self.resumes += 1
        log.info(
            "hearken session %s resumed after %.1f s without a connection: %d responses resent, "
            "audio resent from chunk %d",
            session_id,
            resumed.detached_seconds,
            resumed.replayed_responses,
            resumed.last_audio_sequence + 1,
        )

    def can_resume(self, error: grpc.RpcError) -> bool:
        """Whether to resume after ``error``: the session has a token and the connection
        broke; while resuming, also a refusal the server says is worth retrying."""
        if not self.token:
            return False
        if broken_connection(error):
            return True
        hint = retry_hint(error)
        return self.resuming and error.code() in RETRYABLE and hint is not None and hint >= 0

    def next_wait(self, error: grpc.RpcError, now: Optional[float] = None) -> Optional[float]:
        """Seconds to wait before the next resume, counted from the break; None once the
        window has passed since it (the server has dropped the session by then)."""
        now = time.monotonic() if now is None else now
        if self._broke_at is None:
            self._broke_at = now
            self.broke_with = f"{error.code().name}: {error.details()}"
        left = self._broke_at + self.window - now
        if left <= 0:
            return None
        wait = min(self._backoff * 2**self._tries, MAX_RESUME_WAIT)
        hint = retry_hint(error)
        if hint is not None and hint >= 0:
            wait = max(wait, hint)
        self._tries += 1
        return min(wait, left)

    def detached(self, now: Optional[float] = None) -> float:
        """Seconds since the break being resumed."""
        if self._broke_at is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self._broke_at


class Reporter(Protocol):
    """What a client offers ``resume_wait``: its server and its errors."""

    server: str

    def _error(self, error: grpc.RpcError, retried: int, notes: tuple[str, ...] = ()) -> HearkenError: ...


def resume_wait(state: StreamState, error: grpc.RpcError, client: Reporter) -> float:
    """Seconds to wait before resuming the session of a stream that failed with ``error``,
    said in a warning; raises the error when the session cannot be resumed (the server
    refused, or its window has passed)."""
    if not state.can_resume(error):
        notes: tuple[str, ...] = ()
        if state.resuming:
            notes = (f"resuming the session after its connection broke ({state.broke_with}) failed",)
        raise client._error(error, 0, notes) from error
    again = state.resuming
    wait = state.next_wait(error)
    if wait is None:
        note = f"gave up resuming the session {state.window:g} s after its connection broke"
        raise client._error(error, 0, (note,)) from error
    log.warning(
        "hearken at %s: %s (%s: %s); %s in %.1f s (%.0f s of its %g s window left)",
        client.server,
        "resuming the stream's session failed" if again else "the stream's connection broke",
        error.code().name,
        error.details(),
        "trying again" if again else "resuming its session",
        wait,
        state.window - state.detached(),
        state.window,
    )
    return wait
