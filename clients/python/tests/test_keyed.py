"""A server over TLS that wants an API key, and whose tenant may hold one session at a time:
keys from the caller or the environment, refusals named, the CA honoured, and a refused
stream retried after the server's hint."""

from __future__ import annotations

import logging
import threading
import time

import grpc
import pytest

from conftest import Clip, finals, wer
from test_cli import cli

from hearken_client import Client, Config, HearkenError, Retry

NO_RETRY = Retry(attempts=0)


def test_a_missing_or_wrong_key_is_named(keyed: tuple[str, str, str]) -> None:
    url, _, ca = keyed
    with Client(url, ca=ca, retry=NO_RETRY) as anonymous, pytest.raises(HearkenError) as refused:
        anonymous.list_models()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert f"hearken at {url} wants an API key" in str(refused.value)
    assert "UNAUTHENTICATED: this server requires an API key" in str(refused.value)

    with (
        Client(url, ca=ca, api_key="hk_wrong", retry=NO_RETRY) as wrong,
        pytest.raises(HearkenError) as refused,
    ):
        list(wrong.stream(b"\0\0" * 1600))
    assert str(refused.value) == f"hearken at {url} refused the key: UNAUTHENTICATED: invalid API key"

    run = cli("models", "--server", url, "--ca", ca)
    assert run.returncode == 1 and "UNAUTHENTICATED" in run.stderr, run.stderr


def test_the_key_from_the_environment_over_tls(
    keyed: tuple[str, str, str], short: Clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key, ca = keyed
    monkeypatch.setenv("HEARKEN_API_KEY", key)
    with Client(url, ca=ca) as client:
        assert wer(short.text, client.recognize(short.path).text) <= 0.15
    with Client(url, retry=NO_RETRY) as untrusting, pytest.raises(HearkenError) as refused:
        untrusting.list_models()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE, "the test CA is not one of gRPC's roots"


class RetryLogged(logging.Handler):
    """Sets ``seen`` when the client logs that it will retry."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.seen.set()


def test_a_refused_stream_is_retried_after_the_servers_hint(keyed: tuple[str, str, str], short: Clip) -> None:
    url, key, ca = keyed
    client = Client(url, api_key=key, ca=ca)
    release = threading.Event()

    def silence_until_released():
        yield b"\0\0" * 1600
        release.wait(30)

    holder = client.stream(silence_until_released())
    holding = threading.Thread(target=lambda: list(holder))
    holding.start()
    deadline = time.monotonic() + 10
    while holder.session is None:
        assert time.monotonic() < deadline, "the holding stream never started"
        time.sleep(0.01)

    # The tenant's one slot is taken: refused, with the server's hint in the error.
    with Client(url, api_key=key, ca=ca, retry=NO_RETRY) as impatient, pytest.raises(HearkenError) as refused:
        impatient.recognize(short.path)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.retry_after == 2.0
    assert "over its quota of 1 concurrent sessions" in str(refused.value)

    # A stream from a generator is refused, waits the hint out while the slot frees, and
    # sends again the audio gRPC took before the refusal.
    logged = RetryLogged()
    logging.getLogger("hearken_client").addHandler(logged)
    try:
        threading.Thread(target=lambda: logged.seen.wait(10) and release.set()).start()
        pcm = short.pcm16()
        started = time.monotonic()
        updates = list(client.stream(pcm[i : i + 3200] for i in range(0, len(pcm), 3200)))
    finally:
        release.set()
        logging.getLogger("hearken_client").removeHandler(logged)
        holding.join(10)
        client.close()
    assert logged.seen.is_set(), "the stream was not refused first"
    assert time.monotonic() - started >= 1.9, "the server's 2 s hint was honoured"
    assert wer(short.text, finals(updates)) <= 0.15, finals(updates)
