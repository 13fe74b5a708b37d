"""The one exception the client raises for a failed call, with a message that says who
refused what and why, instead of a bare ``grpc.RpcError``."""

from __future__ import annotations

import grpc

from .retry import retry_hint


class HearkenError(Exception):
    """A call to hearken failed. ``code`` is the gRPC status (None when the call never
    reached the server), ``details`` the server's message, ``retry_after`` the wait the server
    suggested (seconds), if it did."""

    def __init__(
        self,
        message: str,
        *,
        server: str,
        code: grpc.StatusCode | None = None,
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.code = code
        self.details = details
        self.retry_after = retry_after


def from_rpc(
    error: grpc.RpcError, server: str, *, has_key: bool, retried: int = 0, notes: tuple[str, ...] = ()
) -> HearkenError:
    """The error as the user should read it: the server, what went wrong in words, the gRPC
    code and the server's own message; ``notes`` say what the client tried."""
    code: grpc.StatusCode = error.code()
    details: str = error.details() or ""
    hint = retry_hint(error)
    if hint is not None and hint < 0:
        hint = None  # an unreadable hint means "do not retry": there is no wait to report
    said = [f"the server asked to retry in {hint:g} s"] if hint is not None else []
    if retried:
        said.append(f"gave up after {retried} retries")
    said.extend(notes)
    message = f"{_what(code, server, has_key)}: {code.name}: {details}"
    if said:
        message += f" ({'; '.join(said)})"
    return HearkenError(message, server=server, code=code, details=details, retry_after=hint)


def _what(code: grpc.StatusCode, server: str, has_key: bool) -> str:
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if has_key:
            return f"hearken at {server} refused the key"
        return f"hearken at {server} wants an API key (pass api_key=, --api-key or set HEARKEN_API_KEY)"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"hearken at {server} is unavailable"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"hearken at {server} refused the request at a limit"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return f"hearken at {server} rejected the request"
    return f"hearken at {server} failed the request"
