"""A handler that loses its client stops its work (vLLM's `with_cancellation`, for Starlette).

The handler races a listener for the client's disconnect; whichever finishes first cancels the
other. Cancelling the handler cancels the provider call it awaits, and providers abort their
engine request on cancellation. Streaming responses need none of this: Starlette cancels their
body iterator when the client goes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up before the answer


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def with_cancellation(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        # The body is read (and cached on the request) first, so the listener below only ever
        # receives the disconnect, never a piece of the body the handler needs.
        await request.body()
        work: asyncio.Task[Response] = asyncio.create_task(handler(request))
        gone = asyncio.create_task(_disconnected(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if work.done() and not work.cancelled():
            return work.result()
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    return wrapper
