"""A session's options, and the typed change a client asks for with `session.update`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIN_RATE, MAX_RATE = 8000, 48000


class SessionOptions(BaseModel):
    """What a session runs with now."""

    model_config = ConfigDict(frozen=True)

    input_sample_rate: int
    voice: str
    system_prompt: str
    language: str
    use_rag: bool


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

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True, exclude_none=True)
