"""Which provider served the current request, per slot: the facades note it when a provider
gives its first output, and the HTTP layer tells the client (the `X-Monolith-Provider` header),
so a client can see when a mock answered, a fallback mock included.

The record is one mutable object per request in a context variable: tasks the request starts
(cancellation races, TTS render tasks, streaming bodies) copy the context and so share it."""

from __future__ import annotations

import contextvars

from monolith.providers.base import Provider


class Served:
    def __init__(self) -> None:
        self.by: dict[str, list[str]] = {}  # slot name -> backends, in the order they served

    def note(self, slot: str, provider: Provider) -> None:
        backends = self.by.setdefault(slot, [])
        if provider.backend not in backends:
            backends.append(provider.backend)


served_var: contextvars.ContextVar[Served | None] = contextvars.ContextVar("served", default=None)


def note_served(slot: str, provider: Provider) -> None:
    record = served_var.get()
    if record is not None:
        record.note(slot, provider)
