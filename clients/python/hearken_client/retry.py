"""When a failed call is worth trying again, and after how long.

hearken says so itself: a refusal that retrying can cure (a full queue, no free session slot,
a tenant over its quota, a server shutting down) is RESOURCE_EXHAUSTED or UNAVAILABLE with
gRPC's ``grpc-retry-pushback-ms`` trailer. Other RESOURCE_EXHAUSTED errors (audio too long, a
message too large, a client outrunning transcription) carry no hint and fail at once: the same
request would fail again. UNAVAILABLE without a hint is a connection that failed, which is
tried again after a short backoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

PUSHBACK = "grpc-retry-pushback-ms"
RETRYABLE = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class Retry:
    """How many times to retry, and the longest wait to accept; ``Retry(attempts=0)`` never
    retries. A stream is retried only before it has yielded an update: after that, the caller
    has acted on results a second session would repeat. Resuming a stream whose connection
    broke (``Config.resumable``) is not a retry: it continues the same session, for as long
    as the server's resume window lasts, with waits from ``backoff`` up to 2 s."""

    #: Retries after the first try.
    attempts: int = 3
    #: Waits the server asks for are capped at this, seconds.
    max_wait: float = 30.0
    #: First wait after a failed connection (no hint), doubled on each retry, seconds.
    backoff: float = 0.5

    def wait(self, error: grpc.RpcError, retried: int) -> float | None:
        """Seconds to wait before retrying after ``error``, or None to give up."""
        if retried >= self.attempts:
            return None
        code = error.code()
        if code not in RETRYABLE:
            return None
        hint = retry_hint(error)
        if hint is None:
            if code == grpc.StatusCode.UNAVAILABLE:
                return min(self.backoff * 2**retried, self.max_wait)
            return None
        if hint < 0:
            return None  # the server says: do not retry
        return min(hint, self.max_wait)


def retry_hint(error: grpc.RpcError) -> float | None:
    """The server's ``grpc-retry-pushback-ms`` in seconds; None when absent, negative when the
    value is not a number (gRPC's rule: then do not retry)."""
    trailers = getattr(error, "trailing_metadata", lambda: None)() or ()
    for key, value in trailers:
        if key == PUSHBACK:
            try:
                return int(value) / 1000
            except (TypeError, ValueError):
                return -1.0
    return None
