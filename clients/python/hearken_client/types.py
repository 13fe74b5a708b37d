"""What the client hands back: plain frozen dataclasses instead of protobuf messages, so code
using the client gets attribute completion, equality and repr, and never imports the stubs.

Each type is built from its message by ``from_proto``; times are seconds from the start of the
audio stream, as the server sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._proto import speech_pb2 as pb


@dataclass(frozen=True)
class Word:
    """One timed word. ``word`` keeps the leading space Whisper gives it, so joining words
    with "" rebuilds the text."""

    word: str
    start: float
    end: float
    probability: float

    @classmethod
    def from_proto(cls, message: pb.Word) -> Word:
        return cls(message.word, message.start, message.end, message.probability)


@dataclass(frozen=True)
class Update:
    """One transcript update of a stream: the current state of one utterance.

    ``committed`` will not change any more; ``tentative`` may. The last update of an utterance
    has ``is_final`` set and everything committed.
    """

    utterance_id: int
    revision: int
    committed: str
    committed_delta: str
    tentative: str
    is_final: bool
    stability: float
    words: tuple[Word, ...]
    start: float
    end: float
    language: str
    audio_dropped: bool

    @property
    def text(self) -> str:
        """The full current text: committed then tentative."""
        return self.committed + self.tentative

    @classmethod
    def from_proto(cls, message: pb.TranscriptUpdate) -> Update:
        return cls(
            utterance_id=message.utterance_id,
            revision=message.revision,
            committed=message.committed,
            committed_delta=message.committed_delta,
            tentative=message.tentative,
            is_final=message.is_final,
            stability=message.stability,
            words=tuple(Word.from_proto(w) for w in message.words),
            start=message.start,
            end=message.end,
            language=message.language,
            audio_dropped=message.audio_dropped,
        )

    def to_json(self) -> dict[str, Any]:
        """The update as the JSON object ``hearken stream --format jsonl`` prints."""
        return {
            "utterance_id": self.utterance_id,
            "revision": self.revision,
            "is_final": self.is_final,
            "committed": self.committed,
            "committed_delta": self.committed_delta,
            "tentative": self.tentative,
            "stability": self.stability,
            "start": self.start,
            "end": self.end,
            "language": self.language,
            "audio_dropped": self.audio_dropped,
            "words": [vars(w) for w in self.words],
        }


@dataclass(frozen=True)
class SessionInfo:
    """What the server said it will do for a stream (its first response)."""

    session_id: str
    model: str
    device: str
    language: str
    sample_rate: int
    max_lead_seconds: float

    @classmethod
    def from_proto(cls, session_id: str, message: pb.SessionStarted) -> SessionInfo:
        config = message.effective_config
        return cls(
            session_id=session_id,
            model=message.model,
            device=message.device,
            language=config.language,
            sample_rate=config.sample_rate_hertz,
            max_lead_seconds=config.max_lead_seconds or message.limits.max_lead_seconds,
        )


@dataclass(frozen=True)
class Segment:
    """One decoded segment of a whole-file transcript."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float

    @classmethod
    def from_proto(cls, message: pb.Segment) -> Segment:
        return cls(
            id=message.id,
            start=message.start,
            end=message.end,
            text=message.text,
            words=tuple(Word.from_proto(w) for w in message.words),
            avg_logprob=message.avg_logprob,
            no_speech_prob=message.no_speech_prob,
        )


@dataclass(frozen=True)
class Transcript:
    """The transcript of a whole recording (``recognize``)."""

    text: str
    language: str
    language_probability: float
    duration: float
    segments: tuple[Segment, ...]
    model: str

    @property
    def words(self) -> tuple[Word, ...]:
        """Every timed word of every segment, in order."""
        return tuple(w for s in self.segments for w in s.words)

    @classmethod
    def from_proto(cls, message: pb.RecognizeResponse) -> Transcript:
        return cls(
            text=message.text,
            language=message.language,
            language_probability=message.language_probability,
            duration=message.duration_seconds,
            segments=tuple(Segment.from_proto(s) for s in message.segments),
            model=message.model,
        )


@dataclass(frozen=True)
class ModelInfo:
    """A model the server knows (``list_models``)."""

    id: str
    languages: tuple[str, ...]
    multilingual: bool
    loaded: bool
    device: str
    available: bool
    is_default: bool

    @classmethod
    def from_proto(cls, message: pb.ModelInfo) -> ModelInfo:
        return cls(
            id=message.id,
            languages=tuple(message.languages),
            multilingual=message.multilingual,
            loaded=message.loaded,
            device=message.device,
            available=message.available,
            is_default=message.is_default,
        )


def stream_event(response: pb.StreamingRecognizeResponse) -> SessionInfo | Update | None:
    """The part of a stream response the client hands on: the session's start or a
    transcript update (speech events and audio acks are the server's bookkeeping)."""
    event = response.WhichOneof("event")
    if event == "session_started":
        return SessionInfo.from_proto(response.session_id, response.session_started)
    if event == "transcript":
        return Update.from_proto(response.transcript)
    return None
