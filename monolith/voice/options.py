"""A session's options, and the typed change a client asks for with `session.update`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from monolith.voice.tools import SessionTool, SessionToolChoice

MIN_RATE, MAX_RATE = 8000, 48000


class SessionOptions(BaseModel):
    """What a session runs with now."""

    model_config = ConfigDict(frozen=True)

    input_sample_rate: int
    voice: str
    system_prompt: str
    language: str
    use_rag: bool
    # Turn-taking (the Realtime API's turn_detection, create_response, interrupt_response): with
    # turn_detection off the client commits its audio turns itself.
    turn_detection: bool = True
    create_response: bool = True
    interrupt_response: bool = True
    output_audio: bool = True  # false: text only, no TTS
    speed: float = 1.0
    tools: list[SessionTool] = Field(default_factory=list)  # functions the model may call (voice/tools.py)
    tool_choice: SessionToolChoice = "auto"
    parallel_tool_calls: bool = True


class OptionsUpdate(BaseModel):
    """The fields `session.update` may change; absent ones stay as they are. The transport parses
    it (unknown fields and wrong types are errors there); the session checks what depends on the
    server (voices, text limits) before anything changes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input_sample_rate: int | None = Field(None, ge=MIN_RATE, le=MAX_RATE)
    voice: str | None = None
    system_prompt: str | None = None
    language: str | None = None
    use_rag: bool | None = None
    turn_detection: bool | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    output_audio: bool | None = None
    speed: float | None = Field(None, ge=0.25, le=4.0)
    tools: list[SessionTool] | None = None
    tool_choice: SessionToolChoice | None = None
    parallel_tool_calls: bool | None = None

    def changes(self) -> dict[str, object]:
        """The fields set, as values (tools stay models, for `SessionOptions.model_copy`)."""
        return {key: getattr(self, key) for key in self.model_fields_set if getattr(self, key) is not None}
