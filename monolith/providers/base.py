"""What every provider shares: lifecycle, identity, and the runner its blocking calls go to."""

from __future__ import annotations

import asyncio
import importlib
import threading
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from monolith.config import Settings

T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs a blocking call off the event loop: the scheduler's per-device executor."""

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T: ...


class ThreadRunner:
    """A runner on asyncio's default thread pool, for providers built outside the scheduler."""

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)


@dataclass(frozen=True)
class EngineSpec:
    """What the factory gives every real engine besides its config section: where its weights
    are, the id clients use, the executor for its blocking calls, and its devices."""

    model_path: str
    model_id: str
    runner: BlockingRunner | None = None
    devices: tuple[int, ...] = ()  # empty: CPU
    settings: Settings | None = None  # for paths relative to config.toml

    @property
    def torch_device(self) -> str:
        return f"cuda:{self.devices[0]}" if self.devices else "cpu"

    def resolve(self, path: str) -> Path:
        return self.settings.resolve(path) if self.settings is not None else Path(path)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, as data: callers ask this, they do not probe for methods."""

    live_streams: bool = False  # STT: decodes a live stream, not only whole files
    word_timestamps: bool = False  # STT: times for each word
    tool_calls: bool = False  # LLM: function calls through the engine's parser
    structured_output: bool = False  # LLM: JSON / JSON-schema constrained decoding
    logprobs: bool = False  # LLM
    speed: bool = False  # TTS: renders at another speaking rate itself
    batching: bool = False  # decodes several requests in one pass
    extra: dict[str, object] = field(default_factory=dict)


class ImportGate:
    """Model libraries are imported one provider at a time, process-wide.

    Providers load side by side on their own threads. transformers, torch and others build their
    namespaces lazily, and a thread importing a half-initialised module sees names missing
    ("cannot import name 'AutoTokenizer' from 'transformers'"). Imports are quick next to loading
    weights, so serialising them costs little; `started` lets a failed load tell whether another
    provider was importing meanwhile (then its ImportError is worth one retry)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0  # import rounds begun, process-wide
        self.active = 0

    def run(self, imports: Callable[[], None]) -> None:
        with self.lock:
            self.started += 1
            self.active += 1
            try:
                imports()
            finally:
                self.active -= 1


IMPORTS = ImportGate()


def import_names(module: str, *names: str) -> None:
    """Import `module` and resolve `names` on it now (a lazy module resolves them on first use)."""
    imported = importlib.import_module(module)
    for name in names:
        getattr(imported, name)


class Provider(ABC):
    """Lifecycle shared by all backends. `load` may block for minutes (real engines)."""

    kind: ClassVar[str]
    backend: ClassVar[str]
    is_mock: ClassVar[bool] = False
    # What a complete weights folder holds: groups of glob alternatives, each group needing one
    # match. `--check`, a swap and fetch_weights.py look here before anything loads.
    required_files: ClassVar[tuple[tuple[str, ...], ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def missing_files(cls, folder: Path) -> list[str]:
        """What `folder` lacks for this backend, as glob alternatives; empty when complete."""
        if not folder.is_dir():
            return [f"folder {folder} does not exist"]
        return [" or ".join(group) for group in cls.required_groups(folder)
                if not any(any(folder.glob(pattern)) for pattern in group)]

    @classmethod
    def required_groups(cls, folder: Path) -> tuple[tuple[str, ...], ...]:
        return cls.required_files

    def __init__(self, *, model_id: str, model_path: str = "", runner: BlockingRunner | None = None) -> None:
        self.model_id = model_id
        self.model_path = model_path
        self.runner: BlockingRunner = runner or ThreadRunner()
        self._imported = False

    def import_libraries(self) -> None:
        """Import the model libraries (and the names) `load` will use; blocking. Mocks import nothing."""

    def ensure_imported(self) -> None:
        """`import_libraries` once, under the process-wide import gate (blocking). The registry
        calls it before `load`; every real `load` calls it too, for code that loads a provider
        by itself."""
        if not self._imported:
            if type(self).import_libraries is not Provider.import_libraries:  # mocks import nothing
                IMPORTS.run(self.import_libraries)
            self._imported = True

    async def load(self) -> None:
        """Load weights; raise on failure (the registry decides about fallback)."""

    async def warmup(self) -> None:
        """Answer one tiny request, so /ready only says ready when serving really works."""

    async def close(self) -> None:
        """Release devices and threads."""

    def health_warnings(self) -> list[str]:
        return []

    def health_problem(self) -> str | None:
        """Why this provider cannot serve any more (its engine died), checked every few seconds
        by the registry; None while it is well."""
        return None

    def is_fatal(self, exc: BaseException) -> bool:
        """Whether `exc` means the engine itself is gone (not just this request)."""
        return False

    def in_flight(self) -> int:
        """Work this provider holds now (requests, open streams): a replaced model is released
        only when it reaches 0."""
        return 0
