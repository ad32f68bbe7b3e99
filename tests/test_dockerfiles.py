"""The Dockerfiles, checked statically (no Docker engine here): hadolint, and every file they
copy and command they run exists in the repo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.cuda"]


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = (REPO / name).read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", joined, re.M)]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(REPO / name)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copied_file_exists_and_weights_are_not_baked_in(name: str) -> None:
    for instruction, args in instructions(name):
        if instruction != "COPY" or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"{name}: COPY {source}: not in the repo"
            assert not source.startswith("weights"), f"{name}: weights must be mounted, not copied"
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "weights" in ignored and ".venv" in ignored


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_monolith_as_non_root_with_a_ready_healthcheck(name: str) -> None:
    found = instructions(name)
    users = [args for ins, args in found if ins == "USER"]
    assert users and users[-1] not in ("root", "0")
    health = [args for ins, args in found if ins == "HEALTHCHECK"]
    assert health and "/ready" in health[-1]
    entry = [args for ins, args in found if ins == "ENTRYPOINT"][-1]
    assert entry == '["python", "-m", "monolith"]' and (REPO / "monolith" / "__main__.py").is_file()
    text = (REPO / name).read_text(encoding="utf-8")
    assert "-c constraints.txt" in text  # versions come from the one pin file
    for script in re.findall(r"scripts/[\w.]+", text):
        assert (REPO / script).exists(), script


def test_cpu_image_serves_the_mock_by_default() -> None:
    cmd = [args for ins, args in instructions("Dockerfile.cpu") if ins == "CMD"][-1]
    assert cmd == '["--cpu-mock"]'


def test_every_package_the_images_install_is_pinned() -> None:
    pins = {line.split("==")[0].lower() for line in (REPO / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for name in DOCKERFILES:
        text = (REPO / name).read_text(encoding="utf-8")
        for match in re.finditer(r"pip install -c constraints.txt (?:--no-deps )?([^\n&;]+)", text):
            for package in match.group(1).replace("\\", " ").split():
                if package.startswith(("-", '"', ".", "/", "http")):
                    continue
                assert package.lower() in pins, f"{name}: {package} has no pin in constraints.txt"


def _stages(name: str) -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for instruction, args in instructions(name):
        if instruction == "FROM":
            current = args.split(" AS ")[-1].strip() if " AS " in args else args
            stages[current] = []
        stages.setdefault(current, []).append((instruction, args))
    return stages


def test_cuda_runtime_has_a_compiler_and_python_headers_for_triton() -> None:
    runtime = " ".join(args for ins, args in _stages("Dockerfile.cuda")["runtime"] if ins == "RUN")
    for package in ("gcc=", "libc6-dev=", "python3-dev="):
        assert package in runtime, f"the runtime stage must install {package.rstrip('=')} (Triton builds at run time)"


def test_cuda_compile_caches_live_on_a_volume() -> None:
    found = _stages("Dockerfile.cuda")["runtime"]
    env = " ".join(args for ins, args in found if ins == "ENV")
    volumes = " ".join(args for ins, args in found if ins == "VOLUME")
    for variable in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_HOME"):
        match = re.search(rf"{variable}=(\S+)", env)
        assert match, f"{variable} is not set"
        assert any(match.group(1).startswith(v.strip('"[], ')) for v in volumes.split(",")), \
            f"{variable}={match.group(1)} is not on a volume ({volumes})"


def test_cuda_image_libraries_are_built_for_one_cuda_line() -> None:
    """torch 2.13 (constraints.txt) is CUDA 13 with cuDNN 9; the base image and sherpa-onnx's
    onnxruntime must be the same line, or the CUDA provider cannot load."""
    text = (REPO / "Dockerfile.cuda").read_text(encoding="utf-8")
    pins = (REPO / "constraints.txt").read_text(encoding="utf-8")
    assert "torch==2.13.0" in pins
    base = re.search(r"ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.", text)
    variant = re.search(r"ARG SHERPA_ONNX_CUDA_VARIANT=cuda(\d+)\.cudnn(\d+)", text)
    assert base and variant
    assert base.group(1) == variant.group(1) == "13" and variant.group(2) == "9"
    assert "-cudnn-" not in base.group(0), "a base image with its own cuDNN puts a second libcudnn.so.9 in the process"
    assert "ld.so.conf.d" in text and "not found" in text  # the CUDA provider's libraries are checked at build


def test_cuda_image_sets_the_process_defaults_python_m_monolith_sets() -> None:
    env = " ".join(args for ins, args in _stages("Dockerfile.cuda")["runtime"] if ins == "ENV")
    assert "VLLM_WORKER_MULTIPROC_METHOD=spawn" in env and "CUDA_DEVICE_ORDER=PCI_BUS_ID" in env
