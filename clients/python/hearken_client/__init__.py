"""A Python client for hearken, the speech-to-text server, over its gRPC API.

    from hearken_client import Client, Config

    with Client("127.0.0.1:50051") as client:
        for update in client.stream("talk.wav", Config(language="en"), realtime=True):
            print(update.committed, "|", update.tentative, "(final)" if update.is_final else "")
        print(client.recognize("talk.wav").text)

A stream whose connection breaks is resumed on a new one, unseen by the loop above
(``Config.resumable``). ``AsyncClient`` offers the same for asyncio. ``python -m
hearken_client`` is a command line (``stream``, ``recognize``, ``models``) that mirrors
``hearken stream``.
"""

from .aio import AsyncClient, AsyncTranscriptStream
from .client import Client, TranscriptStream
from .config import Config
from .errors import HearkenError
from .retry import Retry
from .types import ModelInfo, Segment, SessionInfo, Transcript, Update, Word

__all__ = [
    "AsyncClient",
    "AsyncTranscriptStream",
    "Client",
    "Config",
    "HearkenError",
    "ModelInfo",
    "Retry",
    "Segment",
    "SessionInfo",
    "Transcript",
    "TranscriptStream",
    "Update",
    "Word",
]
