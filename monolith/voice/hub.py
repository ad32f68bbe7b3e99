"""All live voice sessions, whatever their transport: the cap on their number, draining them
when the server stops, and the capacity gauges a router or autoscaler reads."""

from __future__ import annotations

import asyncio
import contextlib

from monolith import metrics
from monolith.voice.session import VoiceSession


class SessionHub:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[str, VoiceSession] = {}
        self.draining = False
        metrics.VOICE_SESSIONS_CAPACITY.set(max_sessions)

    def refusal(self) -> str | None:
        """Why a new session cannot start now (None: it can)."""
        if self.draining:
            return "draining"
        if len(self.sessions) >= self.max_sessions:
            return "full"
        return None

    def refuse(self, reason: str) -> None:
        metrics.VOICE_SESSIONS_REJECTED.labels(reason).inc()

    def add(self, session: VoiceSession) -> None:
        self.sessions[session.id] = session
        metrics.VOICE_SESSIONS.set(len(self.sessions))

    def remove(self, session: VoiceSession) -> None:
        self.sessions.pop(session.id, None)
        metrics.VOICE_SESSIONS.set(len(self.sessions))

    async def drain(self, within_s: float) -> None:
        """No new sessions; each open one is told, finishes its response, and ends."""
        self.draining = True
        sessions = list(self.sessions.values())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.drain(within_s) for s in sessions), return_exceptions=True),
                                   within_s + 1)

    async def close_all(self) -> None:
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        self.sessions.clear()
        metrics.VOICE_SESSIONS.set(0)
