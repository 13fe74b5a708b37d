"""The blocking and asyncio clients against an open server: models, whole files, streams of
files and of raw PCM, at real-time pace and as fast as the server reads."""

from __future__ import annotations

import asyncio
import time

from conftest import Clip, finals, wer

from hearken_client import AsyncClient, Client, Config, Update, Word


def assert_monotonic(words: tuple[Word, ...] | list[Word]) -> None:
    """Each word ends after it starts, and starts no earlier than the one before."""
    assert words, "words are timed"
    for before, word in zip(words, words[1:]):
        assert word.start >= before.start, (before, word)
    for word in words:
        assert word.end >= word.start, word


def test_list_models_names_the_served_model_first(client: Client) -> None:
    models = client.list_models()
    served = models[0]
    assert (served.id, served.loaded, served.is_default, served.device) == ("tiny.en", True, True, "cpu")
    assert "en" in served.languages


def test_recognize_a_file(client: Client, jfk: Clip) -> None:
    transcript = client.recognize(jfk.path)
    assert wer(jfk.text, transcript.text) <= 0.15, transcript.text
    assert (transcript.language, transcript.model) == ("en", "tiny.en")
    assert abs(transcript.duration - 11.0) < 0.1
    assert_monotonic(transcript.words)
    assert transcript.words[-1].end <= transcript.duration + 0.5


def test_a_stream_at_real_time_pace_has_interims_before_its_final(client: Client, short: Clip) -> None:
    """5 s of speech sent as a microphone would: tentative text arrives while it plays,
    committed text only grows, and the final matches the reference."""
    started = time.monotonic()
    arrivals: list[tuple[float, Update]] = []
    stream = client.stream(short.path, Config(language="en"), realtime=True)
    for update in stream:
        arrivals.append((time.monotonic() - started, update))
    updates = [u for _, u in arrivals]
    assert stream.session is not None and stream.session.model == "tiny.en"
    interims = [(at, u) for at, u in arrivals if not u.is_final]
    assert interims, "tentative results while the audio plays"
    assert interims[0][0] < 5.0, f"the first interim came {interims[0][0]:.1f} s in, after the audio ended"
    assert updates[-1].is_final
    assert arrivals[-1][0] >= 4.9, "the audio was sent at real-time pace, so the final follows its end"
    assert wer(short.text, finals(updates)) <= 0.15, finals(updates)
    for before, after in zip(updates, updates[1:]):
        if after.utterance_id == before.utterance_id:
            assert after.revision == before.revision + 1
            assert after.committed.startswith(before.committed), (before, after)
    assert_monotonic(updates[-1].words)
    assert all(u.language == "en" for u in updates)


def test_raw_pcm_in_chunks_of_any_size(client: Client, jfk: Clip) -> None:
    """Raw PCM16 from a generator, cut at odd byte counts: the client sends whole samples."""
    pcm = jfk.pcm16()
    chunks = (pcm[i : i + 999] for i in range(0, len(pcm), 999))
    updates = list(client.stream(chunks, Config(sample_rate=16_000)))
    assert wer(jfk.text, finals(updates)) <= 0.15, finals(updates)
    assert_monotonic([w for u in updates if u.is_final for w in u.words])


def test_the_asyncio_client(server: str, jfk: Clip, short: Clip) -> None:
    async def run() -> None:
        async with AsyncClient(server) as client:
            models = await client.list_models()
            assert models[0].id == "tiny.en"
            from_file = [u async for u in client.stream(jfk.path)]
            assert wer(jfk.text, finals(from_file)) <= 0.15, finals(from_file)

            async def pcm():
                data = short.pcm16()
                for i in range(0, len(data), 3200):
                    yield data[i : i + 3200]

            from_pcm = [u async for u in client.stream(pcm())]
            assert wer(short.text, finals(from_pcm)) <= 0.15, finals(from_pcm)
            transcript = await client.recognize(short.pcm16())
            assert wer(short.text, transcript.text) <= 0.15, transcript.text

    asyncio.run(run())
