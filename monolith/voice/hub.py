"""All live voice sessions: the cap on their number, and closing them at shutdown."""

from __future__ import annotations

import asyncio

from monolith import metrics
from monolith.voice.session import VoiceSession


class SessionHub:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[str, VoiceSession] = {}

    @property
    def full(self) -> bool:
        return len(self.sessions) >= self.max_sessions

    def add(self, session: VoiceSession) -> None:
        self.sessions[session.id] = session
        metrics.VOICE_SESSIONS.set(len(self.sessions))

    def remove(self, session: VoiceSession) -> None:
        self.sessions.pop(session.id, None)
        metrics.VOICE_SESSIONS.set(len(self.sessions))

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        self.sessions.clear()
        metrics.VOICE_SESSIONS.set(0)
