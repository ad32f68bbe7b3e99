"""Server-sent events, one way for every streaming route: `data: <json>` per event, an error as
the last event when the stream fails after its headers went out, `[DONE]` where OpenAI sends it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from monolith.api.errors import sse_error


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


async def sse_events(events: AsyncIterator[dict[str, Any]], *, done: bool) -> AsyncIterator[str]:
    """Encode `events`; a failure becomes an error event (the status line is long gone). A client
    that hangs up cancels the iteration, which closes `events` and so aborts its work."""
    try:
        async for payload in events:
            yield sse(payload)
    except Exception as exc:
        yield sse_error(exc)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    if done:
        yield sse("[DONE]")


def sse_response(events: AsyncIterator[dict[str, Any]], *, done: bool = False) -> StreamingResponse:
    return StreamingResponse(sse_events(events, done=done), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
