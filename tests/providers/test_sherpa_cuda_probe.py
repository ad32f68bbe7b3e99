"""Is sherpa-onnx's CUDA provider usable? A build for another CUDA names the libraries it lacks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from monolith.providers.sherpa_stt.models import probe_cuda_provider


def test_a_cpu_only_build_has_no_cuda_provider(tmp_path: Path) -> None:
    probe = probe_cuda_provider(tmp_path)
    assert probe.library is None and not probe.usable
    assert "no CUDA support" in probe.describe(6) and "cuda:6" in probe.describe(6)
    assert probe_cuda_provider().library is None  # the PyPI wheel installed here


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler to build the stand-in library")
def test_a_cuda_provider_whose_libraries_are_missing_names_them(tmp_path: Path) -> None:
    # A provider library linked against a library that is not on this machine, as the +cuda
    # (CUDA 11.8) wheel is against libcublasLt.so.11 on a CUDA 13 image.
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "provider.c").write_text("int dep(void);\nint provider(void) { return dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libcublasLt_standin.so", tmp_path / "dep.c"], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libonnxruntime_providers_cuda.so",
                    tmp_path / "provider.c", "-L", str(tmp_path), "-lcublasLt_standin"], check=True)
    (tmp_path / "libcublasLt_standin.so").unlink()
    probe = probe_cuda_provider(tmp_path)
    assert probe.library == tmp_path / "libonnxruntime_providers_cuda.so"
    assert probe.missing == ("libcublasLt_standin.so",) and not probe.usable
    assert "missing libcublasLt_standin.so" in probe.describe(6) and "runs on cpu, not cuda:6" in probe.describe(6)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler to build the stand-in library")
def test_a_cuda_provider_that_loads_is_usable(tmp_path: Path) -> None:
    (tmp_path / "provider.c").write_text("int provider(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libonnxruntime_providers_cuda.so",
                    tmp_path / "provider.c"], check=True)
    assert probe_cuda_provider(tmp_path).usable
