"""What a voice session tells its transport, as typed events (Pipecat's frames, in spirit).

The session knows no wire format: each transport (`api/voice_ws.py` for monolith.voice.v1,
`api/realtime.py` for OpenAI's Realtime API) turns these into its own messages. Audio travels as
`ResponseAudio` events like everything else, so ordering is the session's, not the socket's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from monolith.rag.passages import Passage

CancelReason = Literal["barge_in", "client_cancel", "interrupted", "truncated"]


@dataclass(frozen=True)
class SessionCreated:
    session_id: str
    input_sample_rate: int
    output_sample_rate: int
    options: Mapping[str, object]


@dataclass(frozen=True)
class SessionUpdated:
    options: Mapping[str, object]


@dataclass(frozen=True)
class SpeechStarted:
    audio_ms: float  # position in the session's input audio


@dataclass(frozen=True)
class SpeechStopped:
    audio_ms: float


@dataclass(frozen=True)
class TranscriptPartial:
    text: str


@dataclass(frozen=True)
class TranscriptFinal:
    text: str
    audio_ms: float = 0.0


@dataclass(frozen=True)
class ResponseStarted:
    response_id: str
    user_text: str


@dataclass(frozen=True)
class ResponseTextDelta:
    response_id: str
    delta: str


@dataclass(frozen=True)
class ResponseAudioStarted:
    response_id: str
    sample_rate: int


@dataclass(frozen=True)
class ResponseAudio:
    response_id: str
    pcm: bytes  # PCM16 little-endian mono at the session's output rate


@dataclass(frozen=True)
class ResponseFunctionCallDelta:
    """A piece of a function call the model is making (the first of a call may be empty)."""

    response_id: str
    call_id: str
    name: str
    delta: str  # more of the arguments' JSON text


@dataclass(frozen=True)
class ResponseFunctionCall:
    """A whole function call: the client (or whoever runs the tool) answers `call_id`."""

    response_id: str
    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class ResponseDone:
    response_id: str
    text: str  # what was spoken
    sources: tuple[Passage, ...] = ()


@dataclass(frozen=True)
class ResponseCancelled:
    response_id: str
    reason: CancelReason
    spoken_text: str


@dataclass(frozen=True)
class TurnMetrics:
    response_id: str
    figures: Mapping[str, float | bool | None] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionError:
    """Something failed; the transport decides what of it a client may see (api/errors.py)."""

    error: Exception
    response_id: str | None = None


@dataclass(frozen=True)
class SessionClosing:
    """The server is going away: a running response may finish, for at most `within_s`."""

    reason: str
    within_s: float


@dataclass(frozen=True)
class SessionEnded:
    """The session is over; the transport closes its connection (WebSocket code 1001)."""

    reason: str


ServerEvent = (
    SessionCreated | SessionUpdated | SpeechStarted | SpeechStopped | TranscriptPartial | TranscriptFinal
    | ResponseStarted | ResponseTextDelta | ResponseAudioStarted | ResponseAudio | ResponseFunctionCallDelta
    | ResponseFunctionCall | ResponseDone | ResponseCancelled
    | TurnMetrics | SessionError | SessionClosing | SessionEnded
)
