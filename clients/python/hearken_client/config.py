"""What a caller asks of a transcription, in Python terms; turned into the proto's
``RecognitionConfig`` once the audio's encoding is known."""

from __future__ import annotations

from dataclasses import dataclass

from ._proto import speech_pb2 as pb


_POLICIES = {
    "": pb.STREAMING_POLICY_UNSPECIFIED,
    "local-agreement": pb.LOCAL_AGREEMENT,
    "align-att": pb.ALIGN_ATT,
}


@dataclass(frozen=True)
class Config:
    """Options of a stream or a whole-file request. The defaults are what a live client wants:
    tentative results while audio arrives and timed words.

    ``sample_rate`` and ``channels`` describe raw PCM16 input (an iterable of bytes, a pipe);
    files carry their own.
    """

    #: ISO 639-1 code ("en") or name ("german"); empty: detected on multilingual models.
    language: str = ""
    #: Model id (see ``list_models``); empty: the server's default.
    model: str = ""
    #: Text that primes the model: names, spelling, style.
    prompt: str = ""
    #: Translate to English (multilingual models only).
    translate: bool = False
    interim_results: bool = True
    word_timestamps: bool = True
    #: End the stream after the first utterance is final.
    single_utterance: bool = False
    #: Silence that ends an utterance, milliseconds; 0: the server's default.
    endpointing_ms: int = 0
    sample_rate: int = 16_000
    channels: int = 1
    #: Streams: keep the session through a dropped connection. When the connection breaks
    #: (not when the server refuses), the client reconnects, resumes the session the server
    #: holds for its resume window (30 s by default) and resends the audio the server had not
    #: received; the updates go on with no gap and no repeat (``TranscriptStream.resumes``
    #: counts the resumes, each is logged as a warning). To resend, each chunk is kept until
    #: the server acknowledges receiving it, about every second of audio: the buffer holds
    #: the audio in flight, about a second of it at real-time pace (more when sending faster,
    #: up to what the connection's flow control lets through). The source is not read while
    #: the connection is down. False: a broken connection ends the stream with an error, and
    #: the server drops the session at once instead of holding it (and its session slot) for
    #: the window.
    resumable: bool = True
    #: Streams: which rule commits words before an utterance ends. ``"local-agreement"``: once
    #: two consecutive hypotheses agree on them; ``"align-att"``: from one hypothesis, once the
    #: model has heard them whole (sooner); empty: the server's (local-agreement).
    policy: str = ""

    def __post_init__(self) -> None:
        if self.policy not in _POLICIES:
            choices = ", ".join(repr(p) for p in _POLICIES)
            raise ValueError(f"unknown policy {self.policy!r}; use one of {choices}")

    def to_proto(
        self, encoding: pb.AudioEncoding, sample_rate: int = 0, channels: int = 0
    ) -> pb.RecognitionConfig:
        """The proto config for audio in ``encoding`` (rate and channels 0 for containers,
        which carry their own)."""
        return pb.RecognitionConfig(
            encoding=encoding,
            sample_rate_hertz=sample_rate,
            channels=channels,
            language=self.language,
            model=self.model,
            task=pb.TRANSLATE if self.translate else pb.TRANSCRIBE,
            prompt=self.prompt,
            interim_results=self.interim_results,
            word_timestamps=self.word_timestamps,
            single_utterance=self.single_utterance,
            endpointing_ms=self.endpointing_ms,
            policy=_POLICIES[self.policy],
        )
