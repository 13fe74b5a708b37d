from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    FLOAT32_LE: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
    ALAW: _ClassVar[AudioEncoding]
    FLAC: _ClassVar[AudioEncoding]
    OGG: _ClassVar[AudioEncoding]
    WAV: _ClassVar[AudioEncoding]
    MP3: _ClassVar[AudioEncoding]
    AUTO: _ClassVar[AudioEncoding]

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TRANSCRIBE: _ClassVar[Task]
    TRANSLATE: _ClassVar[Task]

class Overflow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERFLOW_UNSPECIFIED: _ClassVar[Overflow]
    REJECT: _ClassVar[Overflow]
    DROP_OLDEST: _ClassVar[Overflow]

class VoiceActivityDetector(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOICE_ACTIVITY_DETECTOR_UNSPECIFIED: _ClassVar[VoiceActivityDetector]
    SILERO: _ClassVar[VoiceActivityDetector]
    ENERGY: _ClassVar[VoiceActivityDetector]

class StreamingPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAMING_POLICY_UNSPECIFIED: _ClassVar[StreamingPolicy]
    LOCAL_AGREEMENT: _ClassVar[StreamingPolicy]
    ALIGN_ATT: _ClassVar[StreamingPolicy]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
FLOAT32_LE: AudioEncoding
MULAW: AudioEncoding
ALAW: AudioEncoding
FLAC: AudioEncoding
OGG: AudioEncoding
WAV: AudioEncoding
MP3: AudioEncoding
AUTO: AudioEncoding
TASK_UNSPECIFIED: Task
TRANSCRIBE: Task
TRANSLATE: Task
OVERFLOW_UNSPECIFIED: Overflow
REJECT: Overflow
DROP_OLDEST: Overflow
VOICE_ACTIVITY_DETECTOR_UNSPECIFIED: VoiceActivityDetector
SILERO: VoiceActivityDetector
ENERGY: VoiceActivityDetector
STREAMING_POLICY_UNSPECIFIED: StreamingPolicy
LOCAL_AGREEMENT: StreamingPolicy
ALIGN_ATT: StreamingPolicy

class RecognitionConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hertz", "channels", "language", "model", "task", "prompt", "interim_results", "word_timestamps", "single_utterance", "endpointing_ms", "max_lead_seconds", "overflow", "vad", "resumable", "policy")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HERTZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    SINGLE_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_LEAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    VAD_FIELD_NUMBER: _ClassVar[int]
    RESUMABLE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hertz: int
    channels: int
    language: str
    model: str
    task: Task
    prompt: str
    interim_results: bool
    word_timestamps: bool
    single_utterance: bool
    endpointing_ms: int
    max_lead_seconds: float
    overflow: Overflow
    vad: VoiceActivityDetector
    resumable: bool
    policy: StreamingPolicy
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hertz: _Optional[int] = ..., channels: _Optional[int] = ..., language: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., prompt: _Optional[str] = ..., interim_results: _Optional[bool] = ..., word_timestamps: _Optional[bool] = ..., single_utterance: _Optional[bool] = ..., endpointing_ms: _Optional[int] = ..., max_lead_seconds: _Optional[float] = ..., overflow: _Optional[_Union[Overflow, str]] = ..., vad: _Optional[_Union[VoiceActivityDetector, str]] = ..., resumable: _Optional[bool] = ..., policy: _Optional[_Union[StreamingPolicy, str]] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("config", "audio", "control", "resume")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio: AudioChunk
    control: Control
    resume: ResumeSession
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., control: _Optional[_Union[Control, _Mapping]] = ..., resume: _Optional[_Union[ResumeSession, _Mapping]] = ...) -> None: ...

class ResumeSession(_message.Message):
    __slots__ = ("token", "last_response_sequence")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAST_RESPONSE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    token: str
    last_response_sequence: int
    def __init__(self, token: _Optional[str] = ..., last_response_sequence: _Optional[int] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("data", "sequence")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sequence: int
    def __init__(self, data: _Optional[bytes] = ..., sequence: _Optional[int] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("finalize", "keep_alive", "end_of_stream", "cancel")
    FINALIZE_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    END_OF_STREAM_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    finalize: Finalize
    keep_alive: KeepAlive
    end_of_stream: EndOfStream
    cancel: Cancel
    def __init__(self, finalize: _Optional[_Union[Finalize, _Mapping]] = ..., keep_alive: _Optional[_Union[KeepAlive, _Mapping]] = ..., end_of_stream: _Optional[_Union[EndOfStream, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ...) -> None: ...

class Finalize(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeepAlive(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndOfStream(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Cancel(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("session_id", "sequence", "session_started", "transcript", "speech", "audio_ack", "session_resumed")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_STARTED_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FIELD_NUMBER: _ClassVar[int]
    AUDIO_ACK_FIELD_NUMBER: _ClassVar[int]
    SESSION_RESUMED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sequence: int
    session_started: SessionStarted
    transcript: TranscriptUpdate
    speech: SpeechEvent
    audio_ack: AudioAck
    session_resumed: SessionResumed
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., session_started: _Optional[_Union[SessionStarted, _Mapping]] = ..., transcript: _Optional[_Union[TranscriptUpdate, _Mapping]] = ..., speech: _Optional[_Union[SpeechEvent, _Mapping]] = ..., audio_ack: _Optional[_Union[AudioAck, _Mapping]] = ..., session_resumed: _Optional[_Union[SessionResumed, _Mapping]] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("effective_config", "limits", "model", "device", "resume_token", "resume_window_seconds")
    EFFECTIVE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    effective_config: RecognitionConfig
    limits: ServerLimits
    model: str
    device: str
    resume_token: str
    resume_window_seconds: float
    def __init__(self, effective_config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., model: _Optional[str] = ..., device: _Optional[str] = ..., resume_token: _Optional[str] = ..., resume_window_seconds: _Optional[float] = ...) -> None: ...

class SessionResumed(_message.Message):
    __slots__ = ("last_audio_sequence", "replayed_responses", "detached_seconds")
    LAST_AUDIO_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    DETACHED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    last_audio_sequence: int
    replayed_responses: int
    detached_seconds: float
    def __init__(self, last_audio_sequence: _Optional[int] = ..., replayed_responses: _Optional[int] = ..., detached_seconds: _Optional[float] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_message_bytes", "max_lead_seconds", "max_sessions", "max_audio_seconds")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LEAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    max_lead_seconds: float
    max_sessions: int
    max_audio_seconds: float
    def __init__(self, max_message_bytes: _Optional[int] = ..., max_lead_seconds: _Optional[float] = ..., max_sessions: _Optional[int] = ..., max_audio_seconds: _Optional[float] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("word", "start", "end", "probability")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    word: str
    start: float
    end: float
    probability: float
    def __init__(self, word: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class TranscriptUpdate(_message.Message):
    __slots__ = ("utterance_id", "revision", "committed_delta", "committed", "tentative", "is_final", "stability", "words", "start", "end", "language", "audio_dropped")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_DELTA_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    TENTATIVE_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DROPPED_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    revision: int
    committed_delta: str
    committed: str
    tentative: str
    is_final: bool
    stability: float
    words: _containers.RepeatedCompositeFieldContainer[Word]
    start: float
    end: float
    language: str
    audio_dropped: bool
    def __init__(self, utterance_id: _Optional[int] = ..., revision: _Optional[int] = ..., committed_delta: _Optional[str] = ..., committed: _Optional[str] = ..., tentative: _Optional[str] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., language: _Optional[str] = ..., audio_dropped: _Optional[bool] = ...) -> None: ...

class SpeechEvent(_message.Message):
    __slots__ = ("kind", "time", "utterance_id", "dropped_seconds")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SpeechEvent.Kind]
        SPEECH_STARTED: _ClassVar[SpeechEvent.Kind]
        END_OF_UTTERANCE: _ClassVar[SpeechEvent.Kind]
        AUDIO_DROPPED: _ClassVar[SpeechEvent.Kind]
    KIND_UNSPECIFIED: SpeechEvent.Kind
    SPEECH_STARTED: SpeechEvent.Kind
    END_OF_UTTERANCE: SpeechEvent.Kind
    AUDIO_DROPPED: SpeechEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    kind: SpeechEvent.Kind
    time: float
    utterance_id: int
    dropped_seconds: float
    def __init__(self, kind: _Optional[_Union[SpeechEvent.Kind, str]] = ..., time: _Optional[float] = ..., utterance_id: _Optional[int] = ..., dropped_seconds: _Optional[float] = ...) -> None: ...

class AudioAck(_message.Message):
    __slots__ = ("sequence", "processed_seconds", "backlog_seconds", "dropped_seconds")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    processed_seconds: float
    backlog_seconds: float
    dropped_seconds: float
    def __init__(self, sequence: _Optional[int] = ..., processed_seconds: _Optional[float] = ..., backlog_seconds: _Optional[float] = ..., dropped_seconds: _Optional[float] = ...) -> None: ...

class RecognizeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob", "words")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_PROB_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    id: int
    start: float
    end: float
    text: str
    tokens: _containers.RepeatedScalarFieldContainer[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: _containers.RepeatedCompositeFieldContainer[Word]
    def __init__(self, id: _Optional[int] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., text: _Optional[str] = ..., tokens: _Optional[_Iterable[int]] = ..., temperature: _Optional[float] = ..., avg_logprob: _Optional[float] = ..., compression_ratio: _Optional[float] = ..., no_speech_prob: _Optional[float] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("text", "language", "language_probability", "duration_seconds", "segments", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    language_probability: float
    duration_seconds: float
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    model: str
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "languages", "multilingual", "loaded", "device", "available", "is_default")
    ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    MULTILINGUAL_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    multilingual: bool
    loaded: bool
    device: str
    available: bool
    is_default: bool
    def __init__(self, id: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ..., multilingual: _Optional[bool] = ..., loaded: _Optional[bool] = ..., device: _Optional[str] = ..., available: _Optional[bool] = ..., is_default: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
