"""A resumable stream through a TCP proxy that cuts every live connection mid-utterance: the
client reconnects through it, resumes the session, and the caller sees the same transcript as
an uninterrupted run, every update once, and a normal end."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import Clip, finals, wer, words

from hearken_client import AsyncClient, Client, Config, Retry, Update

#: When the proxy cuts the connections, seconds into a clip sent at real-time pace: inside
#: the short clip's one 5 s utterance, after its first interim.
CUT_AT = 2.5


class Proxy:
    """Forwards TCP connections on 127.0.0.1 to ``upstream`` byte for byte; ``cut`` resets
    every live one at once, on both sides, as a dying network path or a crashed proxy
    would. New connections are accepted as before."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        #: Connections accepted, and connections reset by ``cut``.
        self.accepted = 0
        self.cut_connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
            self.cut_connections += len(live) // 2
        for sock in live:
            _reset(sock)

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._forward, args=(downstream,), daemon=True).start()

    def _forward(self, downstream: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream)
        except OSError:
            _reset(downstream)
            return
        with self._lock:
            self._live |= {downstream, upstream}
            self.accepted += 1
        pumps = [
            threading.Thread(target=_pump, args=(source, sink), daemon=True)
            for source, sink in ((downstream, upstream), (upstream, downstream))
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        with self._lock:
            self._live -= {downstream, upstream}
        downstream.close()
        upstream.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # cut


def _reset(sock: socket.socket) -> None:
    """Closes ``sock`` with a TCP reset, waking the pump blocked reading it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def proxy(server: str) -> Iterator[Proxy]:
    proxy = Proxy(server)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def uninterrupted(proxy: Proxy, short: Clip) -> str:
    """The finals of the short clip at real-time pace through the proxy, left alone."""
    with Client(proxy.address) as client:
        stream = client.stream(short.path, Config(language="en"), realtime=True)
        updates = list(stream)
    assert stream.resumes == 0
    assert_each_update_once(updates)
    assert wer(short.text, finals(updates)) <= 0.15, finals(updates)
    return finals(updates)


class Cut:
    """Cuts the proxy's connections ``CUT_AT`` seconds after ``start``, or just after the first
    update if that comes later (a loaded machine), and tells which updates came before."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._first_update = threading.Event()
        self._thread = threading.Thread(target=self._cut, daemon=True)
        self.at: float | None = None

    def start(self) -> Cut:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def saw(self, update: Update) -> Update:
        self._first_update.set()
        return update

    def _cut(self) -> None:
        self._first_update.wait(10)
        time.sleep(max(0.1, self._started + CUT_AT - time.monotonic()))
        self._proxy.cut()
        self.at = time.monotonic()

    def check(self, arrivals: list[tuple[float, Update]]) -> None:
        self._thread.join()
        assert self.at is not None and self._proxy.cut_connections >= 1, "the stream's connection was cut"
        before = [u for at, u in arrivals if at < self.at]
        assert before and not before[-1].is_final, "cut mid-utterance, after results had come"
        assert any(at > self.at for at, _ in arrivals), "results came after the cut"


class ResumeLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "resuming its session" in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture
def resume_logged() -> Iterator[ResumeLogged]:
    handler = ResumeLogged()
    logging.getLogger("hearken_client").addHandler(handler)
    yield handler
    logging.getLogger("hearken_client").removeHandler(handler)


def assert_each_update_once(updates: list[Update]) -> None:
    """Utterances are numbered 1, 2, 3..., each one's revisions 1, 2, 3... up to its final:
    no update repeated, none missing."""
    last: dict[int, Update] = {}
    for update in updates:
        before = last.get(update.utterance_id)
        if before is None:
            assert update.utterance_id == len(last) + 1, f"utterance {update.utterance_id} after {list(last)}"
            assert update.revision == 1, update
        else:
            assert not before.is_final, f"an update after the final: {update}"
            assert update.revision == before.revision + 1, (before, update)
        last[update.utterance_id] = update
    assert last and all(u.is_final for u in last.values()), "every utterance ended final"


def assert_same_transcript(uninterrupted: str, resumed: str) -> None:
    # The server transcribes the same audio in the same windows whatever the connection did;
    # one word of slack in case a final's timing moved a window edge.
    assert words(resumed) == words(uninterrupted) or wer(uninterrupted, resumed) <= 0.07, (
        uninterrupted,
        resumed,
    )


def test_a_cut_connection_is_resumed_unseen(
    proxy: Proxy, short: Clip, uninterrupted: str, resume_logged: ResumeLogged
) -> None:
    accepted, buffered = proxy.accepted, 0
    arrivals: list[tuple[float, Update]] = []
    with Client(proxy.address) as client:
        stream = client.stream(short.path, Config(language="en"), realtime=True)
        cut = Cut(proxy).start()
        for update in stream:  # ends without an error: the session finished normally
            arrivals.append((time.monotonic(), cut.saw(update)))
            buffered = max(buffered, stream._audio.log.buffered)
    cut.check(arrivals)
    updates = [u for _, u in arrivals]
    assert stream.resumes >= 1 and proxy.accepted > accepted
    assert len(resume_logged.messages) >= stream.resumes, resume_logged.messages
    assert_each_update_once(updates)
    assert_same_transcript(uninterrupted, finals(updates))
    most = buffered / (16_000 * 2)
    assert most <= 2.0, f"{most:.1f} s of audio buffered: the server acknowledges about every second"


def test_the_asyncio_client_resumes_too(proxy: Proxy, short: Clip, uninterrupted: str) -> None:
    async def run() -> tuple[list[tuple[float, Update]], int]:
        async with AsyncClient(proxy.address) as client:
            stream = client.stream(short.path, Config(language="en"), realtime=True)
            cut = Cut(proxy).start()
            arrivals = [(time.monotonic(), cut.saw(u)) async for u in stream]
        cut.check(arrivals)
        return arrivals, stream.resumes

    arrivals, resumes = asyncio.run(run())
    updates = [u for _, u in arrivals]
    assert resumes >= 1
    assert_each_update_once(updates)
    assert_same_transcript(uninterrupted, finals(updates))


def test_cancelling_a_resumable_stream_frees_its_session_at_once(keyed: tuple[str, str, str], short: Clip) -> None:
    """The keyed server's tenant may hold one session: once a live resumable stream is
    cancelled, the next request is admitted at once (a cancel that only vanished would leave
    the session, and the slot, to the 30 s resume window)."""
    url, key, ca = keyed
    with Client(url, ca=ca, api_key=key, retry=Retry(attempts=0)) as client:
        stream = client.stream(short.path, Config(language="en"), realtime=True)
        next(stream)  # the session is live
        stream.cancel()
        assert list(stream) == [], "iteration stops quietly"
        assert wer(short.text, client.recognize(short.path).text) <= 0.15

        async def cancel_async() -> None:
            async with AsyncClient(url, ca=ca, api_key=key, retry=Retry(attempts=0)) as aclient:
                async with aclient.stream(short.path, Config(language="en"), realtime=True) as astream:
                    await astream.__anext__()
                # Leaving the block cancelled the stream and ended its session.
                transcript = await aclient.recognize(short.path)
                assert wer(short.text, transcript.text) <= 0.15

        asyncio.run(cancel_async())
