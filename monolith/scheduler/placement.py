"""Turn config plus a device inventory into a placement plan, or say clearly why not.

The inventory comes from one function (`detect_inventory`) and is injectable, so tests can
describe an 8-GPU node, a 1-GPU box or a CPU-only machine without hardware; `--check --gpus 8x80GB`
checks a plan against a described node.

GPU numbers in `config.toml` are CUDA's numbers, as torch, vLLM and ONNX Runtime see them:
indices into `CUDA_VISIBLE_DEVICES` when it is set, in PCI bus order (monolith sets
`CUDA_DEVICE_ORDER=PCI_BUS_ID` unless the user chose otherwise). NVML ignores both and counts
every GPU in PCI order, so its list is mapped through them here: `devices = [7]` means the same
physical GPU to every library.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from monolith.config import PROVIDER_SECTIONS, Settings
from monolith.scheduler.cuda_env import driver_problem, torch_cuda_version
from monolith.scheduler.model_layout import LayoutError, layout_problems, read_model_shape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPU:
    index: int  # CUDA's number for it in this process (what config.toml names)
    name: str
    memory_mib: int | None = None
    physical: str = ""  # NVML's index (PCI order) or UUID; empty when unknown
    uuid: str = ""


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GPU, ...] = ()
    source: str = "none"
    driver: str = ""  # NVIDIA driver version (NVML); empty when unknown

    @classmethod
    def fake(cls, count: int, name: str = "NVIDIA H100 80GB HBM3", memory_mib: int = 81559) -> Inventory:
        return cls(tuple(GPU(i, name, memory_mib, str(i)) for i in range(count)), source="fake")

    @classmethod
    def described(cls, spec: str) -> Inventory:
        """`--gpus 8`, `8x80GB` or `8x141GB`: a node that is not this machine (80 GB H100s by default)."""
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+(?:\.\d+)?)\s*(?:GB|GiB|G)?)?\s*", spec, re.IGNORECASE)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"--gpus {spec!r}: expected a count such as 8, or count x memory such as 8x80GB")
        count = int(match.group(1))
        if match.group(2) is None:
            return replace(cls.fake(count), source=f"described: {count} GPUs")
        gib = float(match.group(2))
        gpus = tuple(GPU(i, f"GPU with {gib:g} GB", int(gib * 1024), str(i)) for i in range(count))
        return cls(gpus, source=f"described: {count}x{gib:g}GB")

    @property
    def indices(self) -> set[int]:
        return {g.index for g in self.gpus}


def visible_gpus(physical: Sequence[GPU], environ: Mapping[str, str]) -> tuple[tuple[GPU, ...], list[str]]:
    """NVML's GPUs (PCI order) as CUDA numbers them in this process, and any warnings.

    `CUDA_VISIBLE_DEVICES` lists indices (in CUDA_DEVICE_ORDER numbering) or UUIDs; CUDA stops
    at the first entry it cannot resolve. Unset means all, empty means none."""
    warnings: list[str] = []
    order = environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    if order != "PCI_BUS_ID":
        warnings.append(
            f"CUDA_DEVICE_ORDER={order}: CUDA may number the GPUs differently from PCI order; "
            "GPU numbers in config.toml are CUDA's, and this check maps them in PCI order"
        )
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return tuple(replace(g, index=i) for i, g in enumerate(physical)), warnings
    chosen: list[GPU] = []
    for entry in (e.strip() for e in visible.split(",")):
        if not entry:
            break
        found = None
        if entry.isdigit():
            found = physical[int(entry)] if int(entry) < len(physical) else None
        else:
            found = next((g for g in physical if g.uuid and g.uuid.startswith(entry)), None)
        if found is None or found in chosen:
            warnings.append(f"CUDA_VISIBLE_DEVICES={visible!r}: entry {entry!r} names no GPU; CUDA ignores it and the rest")
            break
        chosen.append(found)
    return tuple(replace(g, index=i) for i, g in enumerate(chosen)), warnings


def _nvml_gpus() -> tuple[list[GPU], str]:
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(GPU(i, name if isinstance(name, str) else name.decode(), int(mem), str(i),
                            uuid if isinstance(uuid, str) else uuid.decode()))
        return gpus, driver if isinstance(driver, str) else driver.decode()
    finally:
        pynvml.nvmlShutdown()


def detect_inventory(*, use_torch: bool = True, environ: Mapping[str, str] | None = None) -> Inventory:
    """CUDA devices as this process's libraries number them: NVML first (cheap, mapped through
    CUDA_VISIBLE_DEVICES), torch second (numbers them itself), else none."""
    env = os.environ if environ is None else environ
    if importlib.util.find_spec("pynvml") is not None:
        try:
            physical, driver = _nvml_gpus()
            gpus, warnings = visible_gpus(physical, env)
            for warning in warnings:
                log.warning(warning)
            return Inventory(gpus, source="nvml", driver=driver)
        except Exception as exc:  # no driver: fall through to the next source
            log.debug("NVML unavailable: %s", exc)
    # torch costs a second or two to import: only look when it is installed and allowed.
    if use_torch and ("torch" in sys.modules or importlib.util.find_spec("torch") is not None):
        try:
            import torch

            if torch.cuda.is_available():
                found = []
                for i in range(torch.cuda.device_count()):
                    props = torch.cuda.get_device_properties(i)
                    found.append(GPU(i, props.name, props.total_memory // (1024 * 1024)))
                return Inventory(tuple(found), source="torch")
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
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    endpoint: str = ""  # a provider served by another server: its URL (no credentials); no device here

    @property
    def is_mock(self) -> bool:
        return self.backend == "mock"

    @property
    def is_remote(self) -> bool:
        return bool(self.endpoint)

    @property
    def on_gpu(self) -> bool:
        return bool(self.devices)

    @property
    def device_label(self) -> str:
        if self.endpoint:
            return self.endpoint
        if not self.devices:
            return "cpu"
        return "cuda:" + ",".join(str(d) for d in self.devices)

    @property
    def executor_key(self) -> str:
        # Providers on the same GPU share one executor thread (its CUDA device set once).
        # On CPU each provider gets its own, so a long TTS call never stalls STT decoding.
        return f"cuda:{self.devices[0]}" if self.devices else f"cpu:{self.provider}"

    def describe(self) -> str:
        parts = [f"{label} {size}" for label, size in (
            ("tensor parallel", self.tensor_parallel_size), ("pipeline parallel", self.pipeline_parallel_size),
            ("data parallel", self.data_parallel_size)) if size > 1]
        return f"{self.device_label} ({' x '.join(parts)})" if parts else self.device_label


@dataclass
class Plan:
    assignments: dict[str, Assignment]
    inventory: Inventory
    warnings: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("provider", "backend", "devices", "executor")]
        for a in self.assignments.values():
            rows.append((a.provider, a.backend, a.describe(), "-" if a.is_remote else a.executor_key))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        gpus = ", ".join(
            f"{g.index}:{g.name}" + (f" (physical {g.physical})" if g.physical and g.physical != str(g.index) else "")
            for g in self.inventory.gpus
        ) or "none"
        if self.inventory.driver:
            gpus += f"; driver {self.inventory.driver}"
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"GPUs ({self.inventory.source}): {gpus}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


class PlacementError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("placement rejected:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def build_plan(settings: Settings, inventory: Inventory) -> Plan:
    """Validate every provider's devices against the inventory, the sharing rules and, for the
    LLM, the model's attention layout."""
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
        if name == "llm" and settings.llm.is_remote:
            # Another server runs the model: no GPU, layout or weights here.
            assignments[name] = Assignment(name, "remote", (), endpoint=settings.llm.remote.endpoint)
            continue
        if name == "stt" and settings.stt.onnx_provider == "cpu":
            devices = ()
        problems.extend(_check_devices(name, devices, inventory))
        if name == "llm":
            problems.extend(_llm_problems(settings, devices))
        elif len(devices) > 1:
            problems.append(f"{name}: runs on one device, but devices names {list(devices)}")
        if name == "stt" and settings.stt.onnx_provider == "cuda" and not devices:
            problems.append("stt: onnx_provider is cuda but devices is cpu")
        layout = settings.llm.layout(len(devices)) if name == "llm" and devices else (1, 1, 1)
        assignments[name] = Assignment(name, backend, devices, *layout)
    llm_assignment = assignments["llm"]
    if llm_assignment.devices and not settings.placement.allow_shared:
        for other in assignments.values():
            shared = set(llm_assignment.devices) & set(other.devices)
            if other.provider != "llm" and shared:
                problems.append(
                    f"llm shares GPU {sorted(shared)} with {other.provider}; "
                    "set placement.allow_shared = true to allow it"
                )
    on_gpu = any(a.devices for a in assignments.values())
    driver = driver_problem(inventory.driver, torch_cuda_version()) if on_gpu else None
    if driver is not None:
        problems.append(driver)
    if problems:
        raise PlacementError(problems)
    if settings.cpu_mock:
        warnings.append("--cpu-mock: every provider is a mock")
    return Plan(assignments, inventory, warnings)


def _llm_problems(settings: Settings, devices: tuple[int, ...]) -> list[str]:
    llm = settings.llm
    tp, pp, dp = llm.layout(len(devices))
    layout = f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} x data_parallel_size {dp}"
    if not devices:
        return [f"llm: {layout} needs {tp * pp * dp} GPUs, but devices is cpu"] if tp * pp * dp > 1 else []
    problems = []
    if tp * pp * dp != len(devices):
        problems.append(f"llm: {layout} = {tp * pp * dp} GPU(s), but devices names {len(devices)} "
                        f"GPU(s) {list(devices)}; they must match")
    if tp > 1 or pp > 1:  # any model takes one GPU per replica
        try:
            problems.extend(layout_problems(llm, read_model_shape(settings.resolve(llm.model))))
        except LayoutError as exc:
            problems.append(f"llm: {exc}")
    return problems


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
