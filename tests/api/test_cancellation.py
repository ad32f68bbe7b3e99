"""A client that hangs up stops the work it asked for, on the non-streaming routes too."""

from __future__ import annotations

import asyncio
import json

from ..conftest import make_settings
from ..voice.conftest import serve_live

SLOW = {"MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "5"}


async def test_a_non_streaming_chat_whose_client_hangs_up_is_aborted_in_the_engine(app_factory) -> None:  # type: ignore[no-untyped-def]
    async with serve_live(app_factory(make_settings(SLOW))) as live:
        port = int(live.url.split(":")[2].split("/")[0])
        body = json.dumps({"model": "default", "stream": False,
                           "messages": [{"role": "user", "content": "one two three four five six seven eight"}]})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\nX-Request-ID: hang-up-1\r\n\r\n{body}").encode())
        await writer.drain()
        llm = live.registry.slots["llm"].primary
        for _ in range(100):
            if llm.running_requests():
                break
            await asyncio.sleep(0.02)
        assert llm.running_requests() == 1
        writer.close()  # the client goes away mid-answer
        for _ in range(100):
            if not llm.running_requests():
                break
            await asyncio.sleep(0.02)
        assert llm.running_requests() == 0 and "hang-up-1" in llm.cancelled
        assert "hang-up-1" not in llm.completed
