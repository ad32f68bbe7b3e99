"""Fish Speech's text-to-semantic worker thread, started the way monolith needs it.

Fish's own `launch_thread_safe_queue` starts a thread that loads the model and serves a queue,
but: it never sets the CUDA device in that thread, so `torch.cuda.synchronize()` in
`generate_long` works on GPU 0 (an LLM GPU) and makes a context there; if loading fails in the
thread, its caller waits forever; and it cannot be stopped. This is the same loop on Fish's own
`init_model` and `generate_long`, with the device set first, load errors handed back, and a stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 1800.0
T = TypeVar("T")


@dataclass
class SemanticWorker:
    """The request queue Fish's `TTSInferenceEngine` puts `GenerateRequest`s on, and its thread."""

    requests: queue.Queue[Any]
    thread: threading.Thread
    device: str
    stopped: bool = field(default=False)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.requests.put(None)  # the loop ends after the request it is serving


def bind_device(device: str, set_device: Callable[[str], None]) -> None:
    """Make `device` this thread's current CUDA device (torch keeps it per thread)."""
    if device.startswith("cuda"):
        set_device(device)


def load_model(checkpoint_path: str, device: str, precision: Any, compile: bool) -> tuple[Any, Any]:
    """Fish's `init_model` with its batch-1 caches, on the calling thread bound to `device`."""
    import torch
    from fish_speech.models.text2semantic import inference as t2s

    bind_device(device, torch.cuda.set_device)
    model, decode_one_token = t2s.init_model(checkpoint_path, device, precision, compile=compile)
    with torch.device(device):
        model.setup_caches(max_batch_size=1, max_seq_len=model.config.max_seq_len, dtype=next(model.parameters()).dtype)
    return model, decode_one_token


def start_thread(name: str, device: str, load: Callable[[], T], serve: Callable[[T], None]) -> tuple[T, threading.Thread]:
    """Run `load` then `serve(loaded)` on a new thread; return what `load` made once it is made,
    and raise what it raised (a load that fails in the thread must not leave its caller waiting)."""
    ready = threading.Event()
    made: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            made.append(load())
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        serve(made[0])

    thread = threading.Thread(target=run, name=f"{name}-{device}", daemon=True)
    thread.start()
    if not ready.wait(LOAD_TIMEOUT_S):
        raise TimeoutError(f"Fish Speech's semantic model did not load on {device} in {LOAD_TIMEOUT_S:g} s")
    if failure:
        raise failure[0]
    return made[0], thread


def start_worker(checkpoint_path: str, device: str, precision: Any, compile: bool) -> SemanticWorker:
    """Load the model on its own thread (bound to `device`), then serve requests; raise what
    loading raised."""
    from fish_speech.models.text2semantic import inference as t2s

    requests: queue.Queue[Any] = queue.Queue()
    _, thread = start_thread(
        "fish-semantic", device, lambda: load_model(checkpoint_path, device, precision, compile),
        lambda loaded: serve(requests, loaded[0], loaded[1], t2s))
    return SemanticWorker(requests, thread, device)


def serve(requests: queue.Queue[Any], model: Any, decode_one_token: Any, t2s: Any) -> None:
    """Fish's own request loop: each request's chunks go to its response queue; None stops."""
    while (item := requests.get()) is not None:
        try:
            for chunk in t2s.generate_long(model=model, decode_one_token=decode_one_token, **item.request):
                item.response_queue.put(t2s.WrappedGenerateResponse(status="success", response=chunk))
        except Exception as exc:
            log.error("Fish Speech generation failed: %s", traceback.format_exc())
            item.response_queue.put(t2s.WrappedGenerateResponse(status="error", response=exc))
