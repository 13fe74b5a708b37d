"""Audio that a stream may have to send again, numbered as the server sees it.

Two things send a chunk twice. A stream refused before its first update is retried as a new
session, but by then gRPC may already have taken chunks from a source that cannot be rewound
(a pipe, a generator). And a resumable stream whose connection broke continues its session on
a new connection, where the server wants every chunk it had not received yet. So every chunk
taken from the source is kept in a ``ChunkLog``, numbered from 1, for as long as one of these
may need it:

* until the first update, everything (a retry starts the session again from chunk 1);
* then, for a stream that cannot resume, nothing: a chunk is dropped as it is sent;
* for a resumable stream (from its ``SessionStarted``), until the server acknowledges it: an
  ``AudioAck`` (about every second of audio) or ``SessionResumed`` names the highest chunk it
  holds, and those chunks are dropped. What a resumable stream buffers is thus bounded by the
  audio the server has not acknowledged: about a second of it, plus what the source yields
  while a connection is down.

Each attempt reads the log from its first kept chunk before taking more from the source. The
source is read by one puller at a time, and a chunk a failed attempt took is never lost: it
is in the log for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import ContextManager, Optional


class Keep(enum.Enum):
    """Which chunks the log keeps."""

    #: Every chunk: a refused stream is retried from chunk 1.
    ALL = "all"
    #: None once sent: a stream past its first update that cannot resume.
    UNSENT = "unsent"
    #: The chunks the server has not acknowledged: a resumable stream.
    UNACKNOWLEDGED = "unacknowledged"


class ChunkLog:
    """The chunks taken from a source that may be sent again, by sequence number (from 1).
    Not thread-safe: ``Replay`` guards it."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        #: Sequence number of ``_chunks[0]``.
        self.first = 1
        self.keep = Keep.ALL
        #: The source has no more chunks.
        self.ended = False

    @property
    def next_sequence(self) -> int:
        """The number the next chunk taken from the source gets."""
        return self.first + len(self._chunks)

    @property
    def buffered(self) -> int:
        """Bytes of audio held."""
        return sum(len(c) for c in self._chunks)

    def __len__(self) -> int:
        return len(self._chunks)

    def append(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def take(self, sequence: int) -> Optional[tuple[int, bytes]]:
        """The chunk numbered ``sequence`` and its number, or None when it is still to be taken
        from the source. A chunk the server acknowledged is not sent again: the first one
        kept after it comes instead."""
        if sequence < self.first:
            assert self.keep is Keep.UNACKNOWLEDGED, f"chunk {sequence} was dropped and is read again"
            sequence = self.first
        if sequence >= self.next_sequence:
            return None
        chunk = self._chunks[sequence - self.first]
        if self.keep is Keep.UNSENT:
            self._drop_through(sequence)
        return sequence, chunk

    def results_flow(self) -> None:
        """The first update arrived: a stream that cannot resume will not send a chunk twice."""
        if self.keep is Keep.ALL:
            self.keep = Keep.UNSENT

    def keep_until_acknowledged(self) -> None:
        """The session can be resumed: keep each chunk until the server says it has it."""
        self.keep = Keep.UNACKNOWLEDGED

    def acknowledge(self, sequence: int) -> None:
        """The server holds every chunk up to ``sequence``: they are never needed again."""
        if self.keep is Keep.UNACKNOWLEDGED:
            self._drop_through(min(sequence, self.next_sequence - 1))

    def _drop_through(self, sequence: int) -> None:
        while self.first <= sequence:
            self._chunks.popleft()
            self.first += 1


class _Replayable:
    """What the stream tells a replay of its audio, from the thread reading its responses."""

    log: ChunkLog
    _lock: ContextManager[object]

    def results_flow(self) -> None:
        with self._lock:
            self.log.results_flow()

    def keep_until_acknowledged(self) -> None:
        with self._lock:
            self.log.keep_until_acknowledged()

    def acknowledge(self, sequence: int) -> None:
        with self._lock:
            self.log.acknowledge(sequence)


class Replay(_Replayable):
    """A replayable view of a blocking chunk iterator, read from gRPC's request thread while
    the stream's acknowledgements arrive on the caller's."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self.log = ChunkLog()
        self._attempt = 0
        #: Guards the log; never held while the source blocks, so acknowledgements never wait
        #: for audio.
        self._lock = threading.Lock()
        #: One reader of the source at a time.
        self._pulling = threading.Lock()
        #: What the source raised, for the stream to raise instead of gRPC's CANCELLED.
        self.failure: BaseException | None = None

    def attempt(self) -> Iterator[tuple[int, bytes]]:
        """The numbered chunks for a new attempt, from the first one kept; older attempts'
        iterators stop."""
        with self._lock:
            self._attempt += 1
            return self._chunks(self._attempt, self.log.first)

    def _chunks(self, attempt: int, sequence: int) -> Iterator[tuple[int, bytes]]:
        while True:
            with self._lock:
                if attempt != self._attempt:
                    return
                taken = self.log.take(sequence)
                wanted, ended = self.log.next_sequence, self.log.ended
            if taken is not None:
                sequence, chunk = taken
                yield sequence, chunk
                sequence += 1
            elif ended:
                return
            else:
                self._pull(wanted)

    def _pull(self, wanted: int) -> None:
        """Takes chunk ``wanted`` from the source, unless another attempt did meanwhile."""
        with self._pulling:
            with self._lock:
                if self.log.ended or self.log.next_sequence != wanted:
                    return
            try:
                chunk = next(self._source)
            except StopIteration:
                with self._lock:
                    self.log.ended = True
                return
            except BaseException as e:
                with self._lock:
                    self.log.ended = True
                self.failure = e
                raise
            with self._lock:
                self.log.append(chunk)


class AsyncReplay(_Replayable):
    """``Replay`` for asyncio. A pull runs as a task of its own that callers await shielded,
    so an attempt cancelled mid-pull leaves the chunk to the next attempt instead of losing
    it."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self.log = ChunkLog()
        self._attempt = 0
        self._lock = contextlib.nullcontext()  # one event loop: nothing runs in between
        self._pulling: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    def attempt(self) -> AsyncIterator[tuple[int, bytes]]:
        self._attempt += 1
        return self._chunks(self._attempt, self.log.first)

    async def aclose(self) -> None:
        """Stops a pull in flight (the stream was given up)."""
        if self._pulling is not None:
            self._pulling.cancel()

    async def _chunks(self, attempt: int, sequence: int) -> AsyncIterator[tuple[int, bytes]]:
        while attempt == self._attempt:
            taken = self.log.take(sequence)
            if taken is not None:
                sequence, chunk = taken
                yield sequence, chunk
                sequence += 1
            elif self.log.ended:
                return
            else:
                if self._pulling is None:
                    self._pulling = asyncio.ensure_future(self._pull())
                await asyncio.shield(self._pulling)

    async def _pull(self) -> None:
        try:
            self.log.append(await self._source.__anext__())
        except StopAsyncIteration:
            self.log.ended = True
        except BaseException as e:
            self.log.ended = True
            self.failure = e
            raise
        finally:
            self._pulling = None
