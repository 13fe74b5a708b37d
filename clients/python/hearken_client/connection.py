"""Where the server is and how to reach it: the server URL, TLS and the API key.

The server is given as ``HOST:PORT`` or a URL: ``http://`` and ``grpc://`` are plaintext,
``https://`` and ``grpcs://`` are TLS, checked against ``ca`` (a PEM file) or gRPC's bundled
roots. The key goes in ``authorization: Bearer KEY`` metadata on every call, as hearken's
tenants file expects; ``HEARKEN_API_KEY`` supplies it when none is passed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from .audio import PathLike

DEFAULT_SERVER = "http://127.0.0.1:50051"
_PLAINTEXT = {"http": False, "grpc": False, "https": True, "grpcs": True}
_OPTIONS = [
    # Responses of long files (segments, words) outgrow gRPC's default 4 MB.
    ("grpc.max_receive_message_length", 64 << 20),
    # After failed connection attempts gRPC waits up to 2 min before the next; a stream
    # resuming its session within the server's window (30 s) needs one every few seconds.
    ("grpc.max_reconnect_backoff_ms", 2000),
]


@dataclass(frozen=True)
class Target:
    """A parsed server address: ``address`` is ``host:port`` for gRPC."""

    address: str
    tls: bool


def parse_server(server: str) -> Target:
    """``HOST:PORT`` or ``SCHEME://HOST[:PORT]``; the port defaults to 443 for TLS and
    hearken's 50051 otherwise."""
    scheme, sep, _ = server.partition("://")
    tls = _PLAINTEXT.get(scheme.lower() if sep else "grpc")
    if tls is None:
        raise ValueError(
            f"server {server!r}: unknown scheme {scheme!r}; use HOST:PORT, http://, https://, "
            "grpc:// or grpcs://"
        )
    url = urlsplit(server if sep else f"grpc://{server}")
    if not url.hostname or url.path.strip("/"):
        raise ValueError(f"server {server!r} is not an address like HOST:PORT or https://HOST:PORT")
    try:
        port = url.port or (443 if tls else 50051)
    except ValueError:
        raise ValueError(f"server {server!r}: the port is not a number") from None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return Target(f"{host}:{port}", tls)


def credentials(target: Target, ca: PathLike | None) -> grpc.ChannelCredentials | None:
    """TLS credentials for a TLS target, None for plaintext; a CA file with a plaintext target
    is a mistake worth saying (the Rust CLI refuses it too)."""
    if not target.tls:
        if ca is not None:
            raise ValueError("a CA file needs a TLS server: https://HOST:PORT or grpcs://HOST:PORT")
        return None
    roots = Path(ca).read_bytes() if ca is not None else None
    return grpc.ssl_channel_credentials(root_certificates=roots)


def api_key(explicit: str | None) -> str | None:
    """The key to send: the one passed, else ``HEARKEN_API_KEY``; empty means none."""
    key = explicit if explicit is not None else os.environ.get("HEARKEN_API_KEY")
    return key or None


def metadata(key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),) if key else ()


def channel(target: Target, ca: PathLike | None) -> grpc.Channel:
    creds = credentials(target, ca)
    if creds is None:
        return grpc.insecure_channel(target.address, options=_OPTIONS)
    return grpc.secure_channel(target.address, creds, options=_OPTIONS)


def aio_channel(target: Target, ca: PathLike | None) -> grpc.aio.Channel:
    creds = credentials(target, ca)
    if creds is None:
        return grpc.aio.insecure_channel(target.address, options=_OPTIONS)
    return grpc.aio.secure_channel(target.address, creds, options=_OPTIONS)
