"""The voice WebSocket with the real sherpa-onnx recognizer (tiny model) in the loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..conftest import build_app, load_tiny
from ..providers.stt_fixtures import silence, speech
from .conftest import connect, serve_live


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def test_spoken_turn_and_barge_in_with_the_real_recognizer(tiny_root: Path) -> None:
    env = {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "10",
           "MONOLITH_LLM__MOCK__FIRST_TOKEN_MS": "20", "MONOLITH_TTS__MOCK__FIRST_CHUNK_MS": "20"}
    settings = load_tiny(tiny_root, env)
    app = build_app(settings)
    async with serve_live(app) as live:
        assert live.registry.health()["stt"]["provider"] == "sherpa-onnx"
        client = await connect(live)
        await client.send_audio(pcm16(np.concatenate([silence(0.3), speech(), silence(1.2)])), pace_s=0.02)
        final = await client.wait_for("transcript.final")
        heard = final["text"]
        assert heard  # random kana from the random model, but text
        assert client.order.index("speech.started") < client.order.index("transcript.partial") < client.order.index("transcript.final")
        started = await client.wait_for("response.started")
        assert started["user_text"] == heard
        await client.wait_for("response.audio.started")

        # The user talks over the (slow) answer: the VAD hears it and the response is cancelled.
        await client.send_audio(pcm16(speech()[:16000]), pace_s=0.02)
        cancelled = await client.wait_for("response.cancelled")
        assert cancelled["reason"] == "barge_in"
        await client.ws.close()
