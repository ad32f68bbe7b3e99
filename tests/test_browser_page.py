"""The voice page at `/` in a real browser: Debian's Chromium, headless, driven by Playwright, its
fake microphone playing a WAV (speech, then silence) into the page, which speaks the Realtime
API to this server. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import REPO, AppFactory, make_settings
from .voice.conftest import serve_live

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
WAV_RATE = 48000
DONE = ("window.monolith && window.monolith.transcripts.length >= 1 && window.monolith.answers.length >= 1"
        " && window.monolith.samplesPlayed > 0")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                "(scripts/install.sh test installs it where apt can)")


def spoken_wav(path: Path, text: str) -> Path:
    """espeak-ng saying `text` (a voiced buzz without espeak-ng), with silence after: %noloop
    plays it once and the page then hears silence, which ends the turn."""
    if shutil.which("espeak-ng"):
        raw = path.with_suffix(".espeak.wav")
        subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
        with wave.open(str(raw)) as w:
            rate = w.getframerate()
            voice = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    else:
        rate = WAV_RATE
        t = np.arange(rate) / rate
        voice = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    n = int(round(len(voice) * WAV_RATE / rate))
    voice = np.interp(np.arange(n) * rate / WAV_RATE, np.arange(len(voice)), voice).astype(np.float32)
    audio = np.concatenate([np.zeros(WAV_RATE // 2), voice * 2.0, np.zeros(int(1.5 * WAV_RATE))])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WAV_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


async def test_the_page_speaks_to_the_server_and_plays_the_answer(app_factory: AppFactory, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    wav = spoken_wav(tmp_path / "hello.wav", "hello there, what is the weather like")
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-quic", "--disable-gpu"]
    settings = make_settings({"MONOLITH_SERVER__API_KEYS": '["page-key"]'})
    async with serve_live(app_factory(settings)) as live, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = await browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            await page.goto(f"{live.http_url}/?autostart=1&key=page-key")
            try:
                await page.wait_for_function(DONE, timeout=45_000, polling=100)
                await page.wait_for_function("window.monolith.samplesPlayed > 12000", timeout=15_000, polling=100)
            finally:
                await page.screenshot(path=str(ARTIFACTS / "voice-page.png"), full_page=True)
            state: dict[str, Any] = await page.evaluate("JSON.parse(JSON.stringify(window.monolith))")
            log_text = await page.inner_text("#log")
        finally:
            await browser.close()
    assert state["connected"] is True  # the session stays open after its turn
    assert state["transcripts"] == ["こんにちは、今日の天気を教えてください。"], json.dumps(state)[:2000]
    assert state["answers"][0] == "こんにちは、今日の天気を教えてください。"  # the echo LLM said it back
    assert state["samplesPlayed"] > 12000 and state["micFrames"] > 50  # the worklets ran headless
    assert state["lastMetrics"] and "tts_start_ms" in state["lastMetrics"]
    assert state["errors"] == [], state["errors"]
    assert not [c for c in console if c.startswith(("pageerror", "error"))], console
    assert "今日の天気" in log_text


async def test_the_page_is_served_offline_with_its_worklets(app_factory: AppFactory) -> None:
    import httpx

    async with serve_live(app_factory(make_settings())) as live, httpx.AsyncClient(base_url=live.http_url) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text and "http" not in page.text.split("<body")[0]
        for asset in ("app.js", "capture-worklet.js", "playback-worklet.js"):
            assert (await http.get(f"/static/{asset}")).status_code == 200
