"""hearken's HTTP gateway driven by OpenAI's official Python SDK.

Run by `cargo test --test openai_sdk`, which starts a server and sets:
  HEARKEN_BASE_URL    e.g. http://127.0.0.1:8000/v1
  HEARKEN_CORPUS_DIR  the speech corpus (manifest.jsonl and clips)
Against a running `hearken serve`, set both and run `python3 -m pytest -q` on this file.
"""

import json
import os
import re
from pathlib import Path

import openai
import pytest

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
