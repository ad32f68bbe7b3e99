"""Is each provider's weights folder complete (each backend declares its files)? `--check`
answers before anything loads; a swap asks before it touches the serving model."""

from __future__ import annotations

from pathlib import Path

from monolith.config import Settings
from monolith.registry.factories import backend_class
from monolith.scheduler.placement import Plan


def missing_files(name: str, backend: str, folder: Path) -> list[str]:
    """What `folder` lacks for `backend` serving `name`; empty when complete. Mocks need a folder
    only (a swap records its path)."""
    if backend == "mock":
        return [] if folder.is_dir() else [f"folder {folder} does not exist"]
    return backend_class(name, backend).missing_files(folder)


def check_weights(settings: Settings, plan: Plan) -> tuple[list[str], list[str]]:
    """(report lines for every provider, the problems that would keep the server from being ready)."""
    lines: list[str] = []
    problems: list[str] = []
    for name, assignment in plan.assignments.items():
        if assignment.is_mock:
            lines.append(f"{name}: mock, no weights needed")
            continue
        if assignment.is_remote:
            lines.append(f"{name}: served by {assignment.endpoint}, no weights needed here (--check does not call it)")
            continue
        section = getattr(settings, name)
        folder = settings.resolve(section.model)
        missing = missing_files(name, assignment.backend, folder)
        if not missing:
            lines.append(f"{name}: {folder} complete")
            continue
        incomplete = f"{name}: {folder} incomplete (missing {', '.join(missing)})"
        if section.fallback == "mock" and settings.server.ready_when_degraded:
            lines.append(f"{incomplete}; the mock would serve and /ready would say degraded (ready_when_degraded)")
            continue
        problems.append(incomplete)
        then = "its mock would serve but /ready would answer 503" if section.fallback == "mock" else "it cannot serve"
        lines.append(f"{incomplete}; {then}")
    return lines, problems
