"""Audio that a retried stream can send again.

A stream is retried only before its first update, but by then gRPC may already have taken
chunks from a source that cannot be rewound (a pipe, a generator). So every chunk taken is
logged until the first update, and each attempt reads the log from its start before taking
more from the source. The source is read by one puller at a time, and a chunk a failed
attempt took is never lost: it is in the log for the next one. Once the first update is out
(``stop_recording``), chunks are dropped from the log as they are sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Optional


class Replay:
    """A replayable view of a blocking chunk iterator, read from gRPC's request thread."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._log: list[Optional[bytes]] = []
        self._ended = False
        self._recording = True
        self._attempt = 0
        self._lock = threading.Lock()
        #: What the source raised, for the stream to raise instead of gRPC's CANCELLED.
        self.failure: BaseException | None = None

    def attempt(self) -> Iterator[bytes]:
        """The chunks for a new attempt; older attempts' iterators stop."""
        self._attempt += 1
        return self._chunks(self._attempt)

    def stop_recording(self) -> None:
        self._recording = False

    def _chunks(self, attempt: int) -> Iterator[bytes]:
        index = 0
        while attempt == self._attempt:
            with self._lock:
                if index == len(self._log) and not self._ended:
                    self._pull()
                if index == len(self._log):
                    return
                chunk = self._log[index]
                if not self._recording:
                    self._log[index] = None
            index += 1
            assert chunk is not None, "a dropped chunk was read again"
            yield chunk

    def _pull(self) -> None:
        try:
            self._log.append(next(self._source))
        except StopIteration:
            self._ended = True
        except BaseException as e:
            self._ended = True
            self.failure = e
            raise


class AsyncReplay:
    """``Replay`` for asyncio. A pull runs as a task of its own that callers await shielded,
    so an attempt cancelled mid-pull leaves the chunk to the next attempt instead of losing
    it."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._log: list[Optional[bytes]] = []
        self._ended = False
        self._recording = True
        self._attempt = 0
        self._pulling: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    def attempt(self) -> AsyncIterator[bytes]:
        self._attempt += 1
        return self._chunks(self._attempt)

    def stop_recording(self) -> None:
        self._recording = False

    async def aclose(self) -> None:
        """Stops a pull in flight (the stream was given up)."""
        if self._pulling is not None:
            self._pulling.cancel()

    async def _chunks(self, attempt: int) -> AsyncIterator[bytes]:
        index = 0
        while attempt == self._attempt:
            if index == len(self._log) and not self._ended:
                if self._pulling is None:
                    self._pulling = asyncio.ensure_future(self._pull())
                await asyncio.shield(self._pulling)
                continue
            if index == len(self._log):
                return
            chunk = self._log[index]
            if not self._recording:
                self._log[index] = None
            index += 1
            assert chunk is not None, "a dropped chunk was read again"
            yield chunk

    async def _pull(self) -> None:
        try:
            self._log.append(await self._source.__anext__())
        except StopAsyncIteration:
            self._ended = True
        except BaseException as e:
            self._ended = True
            self.failure = e
            raise
        finally:
            self._pulling = None
