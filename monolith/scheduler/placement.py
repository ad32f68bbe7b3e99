"""Turn config plus a device inventory into a placement plan, or say clearly why not.

The inventory comes from one function (`detect_inventory`) and is injectable, so tests can
describe an 8-GPU node, a 1-GPU box or a CPU-only machine without hardware.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, field

from monolith.config import PROVIDER_SECTIONS, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    memory_mib: int | None = None


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GPU, ...] = ()
    source: str = "none"

    @classmethod
    def fake(cls, count: int, name: str = "NVIDIA H100 80GB HBM3") -> Inventory:
        return cls(tuple(GPU(i, name, 81559) for i in range(count)), source="fake")

    @property
    def indices(self) -> set[int]:
        return {g.index for g in self.gpus}


def detect_inventory(*, use_torch: bool = True) -> Inventory:
    """CUDA devices as this process sees them: NVML first (cheap), torch second, else none."""
    if importlib.util.find_spec("pynvml") is not None:
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                gpus = []
                for i in range(pynvml.nvmlDeviceGetCount()):
                    handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                    name = pynvml.nvmlDeviceGetName(handle)
                    mem = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
                    gpus.append(GPU(i, name if isinstance(name, str) else name.decode(), int(mem)))
                return Inventory(tuple(gpus), source="nvml")
            finally:
                pynvml.nvmlShutdown()
        except Exception as exc:  # no driver: fall through to the next source
            log.debug("NVML unavailable: %s", exc)
    # torch costs a second or two to import: only look when it is installed and allowed.
    if use_torch and ("torch" in sys.modules or importlib.util.find_spec("torch") is not None):
        try:
            import torch

            if torch.cuda.is_available():
                gpus = []
                for i in range(torch.cuda.device_count()):
                    props = torch.cuda.get_device_properties(i)
                    gpus.append(GPU(i, props.name, props.total_memory // (1024 * 1024)))
                return Inventory(tuple(gpus), source="torch")
        except Exception as exc:
            log.debug("torch CUDA probe failed: %s", exc)
    return Inventory((), source="none")


@dataclass(frozen=True)
class Assignment:
    """Where one provider runs: a device group, and the executor that serves it."""

    provider: str
    backend: str
    devices: tuple[int, ...]  # empty: CPU
    tensor_parallel_size: int = 1

    @property
    def is_mock(self) -> bool:
        return self.backend == "mock"

    @property
    def on_gpu(self) -> bool:
        return bool(self.devices)

    @property
    def device_label(self) -> str:
        if not self.devices:
            return "cpu"
        return "cuda:" + ",".join(str(d) for d in self.devices)

    @property
    def executor_key(self) -> str:
        # Providers on the same GPU share one executor thread (its CUDA device set once).
        # On CPU each provider gets its own, so a long TTS call never stalls STT decoding.
        return f"cuda:{self.devices[0]}" if self.devices else f"cpu:{self.provider}"

    def describe(self) -> str:
        tp = f" (tensor parallel {self.tensor_parallel_size})" if self.tensor_parallel_size > 1 else ""
        return f"{self.device_label}{tp}"


@dataclass
class Plan:
    assignments: dict[str, Assignment]
    inventory: Inventory
    warnings: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("provider", "backend", "devices", "executor")]
        for a in self.assignments.values():
            rows.append((a.provider, a.backend, a.describe(), a.executor_key))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        gpus = ", ".join(f"{g.index}:{g.name}" for g in self.inventory.gpus) or "none"
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"GPUs ({self.inventory.source}): {gpus}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


class PlacementError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("placement rejected:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def build_plan(settings: Settings, inventory: Inventory) -> Plan:
    """Validate every provider's devices against the inventory and the sharing rules."""
    problems: list[str] = []
    warnings: list[str] = []
    assignments: dict[str, Assignment] = {}
    for name in PROVIDER_SECTIONS:
        section = getattr(settings, name)
        backend = "mock" if settings.cpu_mock else section.provider
        devices: tuple[int, ...] = () if section.devices == "cpu" else tuple(section.devices)
        if backend == "mock":
            # Mocks never touch a GPU; their configured devices are irrelevant.
            assignments[name] = Assignment(name, backend, ())
            continue
        if name == "stt" and settings.stt.onnx_provider == "cpu":
            devices = ()
        tp = settings.llm.tensor_parallel_size if name == "llm" else 1
        problems.extend(_check_devices(name, devices, inventory))
        if name == "llm" and devices and tp != len(devices):
            problems.append(
                f"llm: tensor_parallel_size is {tp} but devices names {len(devices)} GPU(s) "
                f"{list(devices)}; they must match"
            )
        if name == "llm" and not devices and tp > 1:
            problems.append(f"llm: tensor_parallel_size {tp} needs GPUs, but devices is cpu")
        if name != "llm" and len(devices) > 1:
            problems.append(f"{name}: runs on one device, but devices names {list(devices)}")
        if name == "stt" and settings.stt.onnx_provider == "cuda" and not devices:
            problems.append("stt: onnx_provider is cuda but devices is cpu")
        assignments[name] = Assignment(name, backend, devices, tp)
    llm = assignments["llm"]
    if llm.devices and not settings.placement.allow_shared:
        for other in assignments.values():
            shared = set(llm.devices) & set(other.devices)
            if other.provider != "llm" and shared:
                problems.append(
                    f"llm shares GPU {sorted(shared)} with {other.provider}; "
                    "set placement.allow_shared = true to allow it"
                )
    if problems:
        raise PlacementError(problems)
    if settings.cpu_mock:
        warnings.append("--cpu-mock: every provider is a mock")
    return Plan(assignments, inventory, warnings)


def _check_devices(name: str, devices: tuple[int, ...], inventory: Inventory) -> list[str]:
    if not devices:
        return []
    problems = []
    if len(set(devices)) != len(devices):
        problems.append(f"{name}: devices lists a GPU twice: {list(devices)}")
    if not inventory.gpus:
        problems.append(
            f"{name}: wants GPU {list(devices)} but this machine has no GPU "
            f"(set {name}.devices = \"cpu\", or run with --cpu-mock)"
        )
        return problems
    missing = sorted(set(devices) - inventory.indices)
    if missing:
        have = sorted(inventory.indices)
        problems.append(f"{name}: GPU {missing} does not exist (this machine has GPUs {have})")
    return problems
