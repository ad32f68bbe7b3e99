"""What the CUDA libraries in this install need from the machine, checked before anything loads.

torch 2.13's PyPI build is made for CUDA 13, which needs NVIDIA driver R580 or newer whatever
the base image's CUDA toolkit is (the toolkit in the image does not replace the driver). With an
older driver every CUDA library fails at its first call, each with its own message; this says it
once, before loading, in words an operator can act on."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# CUDA major version -> the oldest driver that runs it (NVIDIA's CUDA compatibility table,
# "minor version compatibility": 13.x >= 580, 12.x >= 525.60.13, 11.x >= 450.80.02).
DRIVER_FLOOR: dict[int, tuple[int, ...]] = {13: (580,), 12: (525, 60, 13), 11: (450, 80, 2)}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def torch_cuda_version() -> str | None:
    """`torch.version.cuda` without importing torch (a second or two): read torch/version.py."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^cuda(?::[^=]*)?\s*=\s*['\"]([\d.]+)['\"]", text, re.MULTILINE)
    return match.group(1) if match else None


def driver_problem(driver: str, cuda: str | None) -> str | None:
    """Why `driver` cannot run CUDA `cuda` (None when it can, or when either is unknown)."""
    if not driver or not cuda:
        return None
    floor = DRIVER_FLOOR.get(_version(cuda)[0])
    if floor is None or _version(driver) >= floor:
        return None
    need = ".".join(str(p) for p in floor)
    return (f"the NVIDIA driver is {driver}, but this install's torch is built for CUDA {cuda}, which needs "
            f"driver {need} or newer: upgrade the driver, or use an image built for an older CUDA")
