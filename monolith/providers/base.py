"""What every provider shares: lifecycle, identity, and the runner its blocking calls go to."""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
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


class Provider(ABC):
    """Lifecycle shared by all backends. `load` may block for minutes (real engines)."""

    kind: ClassVar[str]
    backend: ClassVar[str]
    is_mock: ClassVar[bool] = False

    def __init__(self, *, model_id: str, model_path: str = "", runner: BlockingRunner | None = None) -> None:
        self.model_id = model_id
        self.model_path = model_path
        self.runner: BlockingRunner = runner or ThreadRunner()

    async def load(self) -> None:
        """Load weights; raise on failure (the registry decides about fallback)."""

    async def warmup(self) -> None:
        """Answer one tiny request, so /ready only says ready when serving really works."""

    async def close(self) -> None:
        """Release devices and threads."""

    def health_warnings(self) -> list[str]:
        return []
