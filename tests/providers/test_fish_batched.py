"""Fish Speech decoded in batches ([tts] max_batch > 1): the same audio as one at a time, rows that
join and leave between steps, first chunks first, and the batch limit kept. Tiny random checkpoint,
float32 on CPU, through Fish Speech's own model classes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monolith.providers.fish_tts import FishTTS
from monolith.providers.fish_tts.batched import BatchedSemanticDecoder

from .test_fish_tts import fish

pytestmark = pytest.mark.engine
BATCH_LOOP = pytest.mark.asyncio(loop_scope="session")  # the async tests share the session's loop

TEXTS = ["Hello there.", "How are you today?", "The weather is fine.", "Tokyo is sunny.",
         "One more sentence.", "Thank you very much.", "See you tomorrow.", "Good night."]
SEEDED = {"seed": 1234}


def assert_same_audio(got: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """The same codes make the same audio, up to float rounding in the codec: it may run beside the
    decode thread, and torch's CPU kernels then split their sums differently (1e-7 here). Other
    codes would differ by far more."""
    assert got.shape == expected.shape, what
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=what)


async def render(provider: FishTTS, text: str, *, first: bool = True) -> np.ndarray:
    pieces = [a async for a in provider.synthesize(text, voice="default", request_id=text, first_in_response=first)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


async def one_at_a_time(fish_model: Path, texts: list[str], **config: Any) -> list[np.ndarray]:
    alone = fish(fish_model, max_batch=1, **config)
    await alone.load()
    try:
        return [await render(alone, text) for text in texts]
    finally:
        await alone.close()


def decoder_of(provider: FishTTS) -> BatchedSemanticDecoder:
    """The provider's decoder, recording every chunk submitted to it."""
    assert provider.batched is not None
    decoder = provider.batched.decoder
    submitted: list[Any] = []
    submit = decoder.submit

    def recording(*args: Any, **kwargs: Any) -> Any:
        handle = submit(*args, **kwargs)
        submitted.append(handle)
        return handle

    decoder.submit = recording  # type: ignore[method-assign]
    decoder.submitted = submitted  # type: ignore[attr-defined]
    return decoder


def decoder_handles(decoder: BatchedSemanticDecoder) -> list[Any]:
    return list(decoder.submitted)  # type: ignore[attr-defined]


@BATCH_LOOP
async def test_a_seeded_chunk_decoded_in_a_batch_of_8_sounds_as_it_does_alone(fish_model: Path) -> None:
    expected = await one_at_a_time(fish_model, TEXTS, **SEEDED)  # Fish's own engine, one at a time
    batched = fish(fish_model, max_batch=8, **SEEDED)
    await batched.load()
    try:
        got = await asyncio.gather(*(render(batched, text) for text in TEXTS))
        assert decoder_of(batched).widest == 8  # all eight shared steps
    finally:
        await batched.close()
    for text, alone, together in zip(TEXTS, expected, got, strict=True):
        assert alone.size > 0, text
        assert_same_audio(together, alone, text)


def pause_at(decoder: BatchedSemanticDecoder, step: int) -> tuple[threading.Event, threading.Event]:
    """Hold the decode thread right after its `step`-th step, until `resume` is set."""
    reached, resume = threading.Event(), threading.Event()

    def on_step(rows: int) -> None:
        if decoder.steps == step:
            reached.set()
            resume.wait(60)

    decoder.on_step = on_step
    return reached, resume


@BATCH_LOOP
async def test_a_chunk_cancelled_mid_batch_frees_its_row_and_the_others_finish_unchanged(fish_model: Path) -> None:
    config = {"max_new_tokens": 80, "seed": 7}
    texts = TEXTS[:4]
    expected = await one_at_a_time(fish_model, texts, **config)
    assert expected[1].size >= 10 * 2048  # the victim would run past step 3 (2048 samples a token)
    provider = fish(fish_model, max_batch=4, **config)
    await provider.load()
    decoder = decoder_of(provider)
    reached, resume = pause_at(decoder, 3)
    try:
        tasks = [asyncio.create_task(render(provider, text)) for text in texts]
        assert await asyncio.to_thread(reached.wait, 60)
        assert sorted(h.text for h in decoder.slots) == sorted(texts)  # all four mid-decode
        tasks[1].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        resume.set()
        others = await asyncio.gather(tasks[0], tasks[2], tasks[3])
        victim = next(h for h in decoder_handles(decoder) if h.text == texts[1])
        assert victim.state == "cancelled" and victim.generated < 10
        assert provider.cancelled == 1 and provider.running_requests() == 0 and decoder.pending() == 0
    finally:
        resume.set()
        await provider.close()
    for alone, together in zip([expected[0], expected[2], expected[3]], others, strict=True):
        assert_same_audio(together, alone)


@BATCH_LOOP
async def test_chunks_join_a_running_batch(fish_model: Path) -> None:
    config = {"max_new_tokens": 60, "seed": 11}
    texts = TEXTS[:3]
    expected = await one_at_a_time(fish_model, texts, **config)
    assert expected[0].size >= 10 * 2048  # the first chunk is still decoding at step 3
    provider = fish(fish_model, max_batch=4, **config)
    await provider.load()
    decoder = decoder_of(provider)
    reached, resume = pause_at(decoder, 3)
    try:
        first = asyncio.create_task(render(provider, texts[0]))
        assert await asyncio.to_thread(reached.wait, 60)
        assert [h.text for h in decoder.slots] == [texts[0]]
        later = [asyncio.create_task(render(provider, text)) for text in texts[1:]]
        while decoder.pending() < 3:  # queued behind the held step
            await asyncio.sleep(0.002)
        resume.set()
        got = [await first, *await asyncio.gather(*later)]
        assert decoder.widest == 3  # they joined the first one's batch
    finally:
        resume.set()
        await provider.close()
    for alone, together in zip(expected, got, strict=True):
        assert_same_audio(together, alone)


@pytest.fixture(scope="module")
def loaded_model(fish_model: Path) -> tuple[Any, Any]:
    """Fish's model and its decode function, from Fish's own loader (no decode thread: the tests
    step by hand)."""
    import torch
    from fish_speech.models.text2semantic import inference as t2s

    from monolith.providers.fish_tts import compat

    compat.install()
    model, decode_one_token = t2s.init_model(str(fish_model), "cpu", torch.float32, compile=False)
    model.setup_caches(max_batch_size=1, max_seq_len=model.config.max_seq_len, dtype=torch.float32)
    return model, decode_one_token


@pytest.fixture
def model(loaded_model: tuple[Any, Any]) -> Any:
    return loaded_model[0]


def test_greedy_codes_in_a_batch_of_8_are_fish_speechs_own(loaded_model: tuple[Any, Any]) -> None:
    """Greedy (a top_p so small only the best token is left; Fish's server refuses it, its
    function does not): each chunk's codes from a batch of 8 equal generate_long's for it alone."""
    from fish_speech.models.text2semantic import inference as t2s

    model, decode_one_token = loaded_model
    greedy = {"temperature": 0.7, "top_p": 1e-6, "repetition_penalty": 1.2, "max_new_tokens": 40}
    own = []
    for text in TEXTS:
        codes = [r.codes for r in t2s.generate_long(model=model, device="cpu", decode_one_token=decode_one_token,
                                                    text=text, prompt_text=[], prompt_tokens=[], **greedy)
                 if r.action == "sample"]
        own.append(codes[0])
    decoder = BatchedSemanticDecoder(model, max_batch=8)
    handles = [decoder.submit(text, **greedy) for text in TEXTS]
    while decoder.pending():
        decoder.step()
    assert decoder.widest == 8
    for text, fish_codes, handle in zip(TEXTS, own, handles, strict=True):
        assert handle.state == "done", text
        assert handle.codes.shape == fish_codes.shape and bool((handle.codes == fish_codes).all()), text


def submit(decoder: BatchedSemanticDecoder, text: str, first: bool) -> Any:
    return decoder.submit(text, temperature=0.7, top_p=0.7, repetition_penalty=1.2, max_new_tokens=16, seed=3,
                          first_in_response=first)


def test_first_chunks_are_admitted_before_later_ones(model: Any) -> None:
    decoder = BatchedSemanticDecoder(model, max_batch=1)
    later_1 = submit(decoder, "A later sentence.", first=False)
    later_2 = submit(decoder, "Another later one.", first=False)
    opening = submit(decoder, "An answer begins.", first=True)
    while decoder.pending():
        decoder.step()
    assert list(decoder.admitted) == [opening.id, later_1.id, later_2.id]
    assert [h.state for h in (opening, later_1, later_2)] == ["done"] * 3


def test_the_batch_size_limit_is_kept(model: Any) -> None:
    decoder = BatchedSemanticDecoder(model, max_batch=2)
    handles = [submit(decoder, text, first=True) for text in TEXTS[:5]]
    rows = []
    while decoder.pending():
        rows.append(decoder.step())
    assert max(rows) == 2 and decoder.widest == 2
    assert all(h.state == "done" and h.codes is not None and h.codes.shape[0] == model.config.num_codebooks
               for h in handles)


def test_a_failing_step_fails_its_chunks_loudly_and_the_decoder_goes_on(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = BatchedSemanticDecoder(model, max_batch=2)
    broken = submit(decoder, "This one meets a broken step.", first=True)
    original = decoder._decode

    def fail_once(n: int) -> None:
        monkeypatch.setattr(decoder, "_decode", original)
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(decoder, "_decode", fail_once)
    stop = threading.Event()
    thread = threading.Thread(target=decoder.serve, args=(stop,), daemon=True)
    thread.start()
    assert broken.done.wait(30)
    assert broken.state == "failed" and "out of memory" in str(broken.error)
    healthy = submit(decoder, "The next one is fine.", first=True)
    assert healthy.done.wait(60) and healthy.state == "done"
    stop.set()
    thread.join(10)
