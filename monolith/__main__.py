"""`python -m monolith [--cpu-mock] [--config PATH] [--host H] [--port P] [--check]`.

The only module that reads argv. vLLM starts its engine core with `spawn`, which re-imports
`__main__`: everything that starts the server sits behind the `__name__` guard below.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monolith.config import Settings
    from monolith.scheduler.placement import Plan

EXIT_CONFIG = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monolith", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $MONOLITH_CONFIG, else ./config.toml if present)")
    parser.add_argument("--cpu-mock", action="store_true", help="serve every provider with its mock, on CPU")
    parser.add_argument("--host", default=None, help="bind address (overrides server.host)")
    parser.add_argument("--port", type=int, default=None, help="port (overrides server.port)")
    parser.add_argument("--check", action="store_true",
                        help="validate config, placement and weights, print the plan, exit 0 or 2")
    parser.add_argument("--gpus", default=None, metavar="N[xMEMGB]",
                        help="with --check: check the plan for a node with these GPUs (e.g. 8 or 8x80GB), "
                             "not this machine's")
    parser.add_argument("--log-format", choices=["json", "text"], default=None)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    return parser.parse_args(argv)


def config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    env = os.environ.get("MONOLITH_CONFIG")
    if env:
        return Path(env)
    default = Path("config.toml")
    return default if default.exists() else None


def set_process_defaults(environ: dict[str, str] | os._Environ[str]) -> None:
    """Environment the libraries read at start-up, unless the user chose otherwise.

    - CUDA numbers GPUs fastest-first by default, NVML in PCI order: PCI order everywhere makes
      `devices = [7]` the same GPU for torch, vLLM, ONNX Runtime and the placement check.
    - vLLM starts its engine core and workers with fork on CUDA; the other providers start
      threads and CUDA in this process meanwhile, and a forked child of such a process can
      hang or crash. spawn starts them clean."""
    environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_process_defaults(os.environ)
    from monolith.config import ConfigError, load_settings
    from monolith.logs import setup_logging
    from monolith.scheduler.placement import Inventory, PlacementError, build_plan, detect_inventory

    try:
        settings = load_settings(config_path(args.config), cpu_mock=args.cpu_mock)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.port is not None and not 1 <= args.port <= 65535:
        print(f"config error: --port {args.port}: a port is a number from 1 to 65535", file=sys.stderr)
        return EXIT_CONFIG
    if args.gpus is not None and not args.check:
        print("--gpus describes another machine: use it with --check", file=sys.stderr)
        return EXIT_CONFIG
    server = settings.server
    setup_logging(fmt=args.log_format or server.log_format, level=args.log_level or server.log_level)
    try:
        inventory = Inventory.described(args.gpus) if args.gpus else detect_inventory(use_torch=not settings.cpu_mock)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    try:
        plan = build_plan(settings, inventory)
    except PlacementError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        return check(settings, plan, for_this_machine=args.gpus is None)

    from monolith.app import create_app
    from monolith.serving import make_server

    app = create_app(settings, plan=plan)
    host = args.host or server.host
    port = args.port or server.port
    log = logging.getLogger("monolith")
    log.info("serving on %s:%d", host, port, extra={"host": host, "port": port})
    if not settings.server.api_keys and not settings.server.api_keys_file and not _loopback(host):
        log.warning("SERVING WITHOUT API KEYS ON %s: anyone who reaches port %d can use every /v1 route and "
                    "voice session; set server.api_keys (or api_keys_file), or bind to 127.0.0.1", host, port)
    # The server drains on SIGTERM, then re-raises the signal with the handler it found: make that
    # handler a clean exit, so `docker stop` sees status 0, not 143.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    make_server(app, settings, host, port).run()
    return 0


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def check(settings: Settings, plan: Plan, *, for_this_machine: bool) -> int:
    """Print the plan and each provider's weights; 2 when this machine's server would not be ready."""
    from monolith.registry.weights import check_weights
    from monolith.scheduler.memory import estimate

    print(plan.table())
    for line in estimate(settings, plan):
        print(line)
    lines, problems = check_weights(settings, plan)
    for line in lines:
        print(f"weights: {line}")
    if not for_this_machine:
        print("plan: valid for the described GPUs (weights are this machine's, shown for information)")
        return 0
    return EXIT_CONFIG if problems else 0


if __name__ == "__main__":
    sys.exit(main())
