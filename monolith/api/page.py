"""`GET /`: the browser voice page (plain HTML, one JS module, two AudioWorklets; no build step,
no CDN, works offline), speaking the Realtime API to `/v1/realtime` on the same host."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


routes = [Route("/", index), Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
