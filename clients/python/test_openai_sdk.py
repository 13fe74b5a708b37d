"""hearken's HTTP gateway driven by OpenAI's official Python SDK.

Run by `cargo test --test openai_sdk`, which starts a server and sets:
  HEARKEN_BASE_URL    e.g. http://127.0.0.1:8000/v1
  HEARKEN_CORPUS_DIR  the speech corpus (manifest.jsonl and clips)
Against a running `hearken serve`, set both and run `python3 -m pytest -q` on this file.
"""

import array
import asyncio
import base64
import json
import os
import re
import time
import wave
from pathlib import Path

import openai
import pytest
import websockets

BASE_URL = os.environ.get("HEARKEN_BASE_URL", "http://127.0.0.1:8000/v1")
CORPUS = Path(os.environ.get("HEARKEN_CORPUS_DIR", Path(__file__).parents[2] / ".." / "shared" / "corpus"))
CLIP = "jfk"


@pytest.fixture(scope="module")
def client():
    # The gateway does not check keys; the SDK insists on one.
    return openai.OpenAI(base_url=BASE_URL, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def clip():
    for line in (CORPUS / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line) if line.strip() else None
        if entry and entry["id"] == CLIP:
            return CORPUS / entry["file"], entry["text"]
    raise AssertionError(f"clip {CLIP} missing from {CORPUS}/manifest.jsonl")


def words(text):
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def wer(reference, hypothesis):
    """Word error rate after lower-casing and dropping punctuation."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def transcribe(client, path, **kwargs):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


def test_json_text_and_subtitles(client, clip):
    path, reference = clip
    result = transcribe(client, path)
    assert wer(reference, result.text) <= 0.1, result.text
    assert result.usage is not None and result.usage.type == "duration"

    text = transcribe(client, path, response_format="text")
    assert isinstance(text, str) and text.strip() == result.text

    srt = transcribe(client, path, response_format="srt")
    assert re.match(r"1\n00:00:00,000 --> 00:00:\d\d,\d{3}\n", srt), srt
    vtt = transcribe(client, path, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> "), vtt


def test_verbose_json_with_words_and_segments(client, clip):
    path, reference = clip
    result = transcribe(
        client, path, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert result.language == "english"
    assert abs(result.duration - 11.0) < 0.05
    assert wer(reference, result.text) <= 0.1
    assert result.segments and result.segments[0].avg_logprob < 0
    assert len(result.words) >= 20
    assert all(w.start <= w.end for w in result.words)
    assert wer(reference, " ".join(w.word for w in result.words)) <= 0.1


def test_stream_sends_deltas_before_done(client, clip):
    path, _ = clip
    whole = transcribe(client, path).text
    kinds, deltas, done = [], [], None
    for event in transcribe(client, path, stream=True):
        kinds.append(event.type)
        if event.type == "transcript.text.delta":
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
    assert kinds and kinds[0] == "transcript.text.delta", kinds
    assert kinds[-1] == "transcript.text.done" and kinds.count("transcript.text.done") == 1, kinds
    assert done == whole
    assert "".join(deltas).strip() == whole


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "tiny.en" in ids, ids
    assert client.models.retrieve("tiny.en").owned_by == "hearken"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_non_audio_file_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"these are notes, not audio\n" * 10)
        )
    assert "not a recognised audio format" in str(raised.value)
    assert raised.value.status_code == 400


def pcm16_at(path, rate):
    """A mono 16-bit WAV's samples linearly resampled to `rate`, as little-endian PCM16."""
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        source_rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    out = array.array("h")
    step = source_rate / rate
    for i in range(int(len(samples) / step) - 1):
        x = i * step
        j, frac = int(x), x - int(x)
        out.append(int(samples[j] * (1 - frac) + samples[j + 1] * frac))
    return out.tobytes()


async def realtime_transcription(pcm, rate):
    """Streams `pcm` at real-time pace in 100 ms appends; returns (deltas before the audio
    ended, completed transcripts)."""
    url = BASE_URL.replace("http://", "ws://", 1) + "/realtime?intent=transcription"
    headers = {"Authorization": "Bearer unused"}
    async with websockets.connect(url, additional_headers=headers) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created", created
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": rate},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
            }},
        }}))
        events = []

        async def receive():
            async for message in ws:
                events.append((time.monotonic(), json.loads(message)))

        receiver = asyncio.create_task(receive())
        chunk = rate // 10 * 2
        start = time.monotonic()
        for i in range(0, len(pcm), chunk):
            audio = base64.b64encode(pcm[i:i + chunk]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await asyncio.sleep(max(0.0, start + (i // chunk + 1) * 0.1 - time.monotonic()))
        audio_end = time.monotonic()
        silence = base64.b64encode(bytes(chunk * 15)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            kinds = [e["type"] for _, e in events]
            completed = kinds.count("conversation.item.input_audio_transcription.completed")
            if completed and completed == kinds.count("input_audio_buffer.committed") and \
                    kinds.count("input_audio_buffer.speech_started") == \
                    kinds.count("input_audio_buffer.speech_stopped"):
                break
        receiver.cancel()
    assert not [e for _, e in events if e["type"] == "error"], events
    early_deltas = [e for at, e in events
                    if e["type"].endswith("input_audio_transcription.delta") and at < audio_end]
    transcripts = [e["transcript"] for _, e in events
                   if e["type"].endswith("input_audio_transcription.completed")]
    return early_deltas, transcripts


def test_realtime_transcription_websocket(clip):
    path, reference = clip
    early_deltas, transcripts = asyncio.run(realtime_transcription(pcm16_at(path, 24000), 24000))
    assert early_deltas, "no transcription delta arrived before the audio ended"
    text = " ".join(transcripts)
    heard = set(words(text))
    overlap = sum(w in heard for w in words(reference)) / len(words(reference))
    assert overlap >= 0.8, text
