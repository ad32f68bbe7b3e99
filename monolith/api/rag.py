"""`POST /v1/rag/search` (passages for a query) and `POST /v1/rag/reload` (pick up a new ingest;
with the pgvector backend, searches read the database live and reload only re-reads its status)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.api.auth import require_admin
from monolith.api.cancellation import with_cancellation
from monolith.api.requests import read_json
from monolith.errors import Unavailable
from monolith.rag.service import RagBackend


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    top_k: int | None = Field(None, ge=1, le=100)
    min_score: float | None = None


def rag_service(request: Request) -> RagBackend:
    rag: RagBackend | None = request.app.state.rag
    if rag is None:
        raise Unavailable("RAG is disabled in this server's config ([rag] enabled = false)", code="rag_disabled")
    return rag


async def search(request: Request) -> Response:
    body = await read_json(request, SearchRequest)  # a bad request is a 400 whatever the index's state
    rag = rag_service(request)
    passages = await rag.search(body.query, top_k=body.top_k, min_score=body.min_score)
    return JSONResponse({
        "object": "list",
        "query": body.query,
        "passages": [
            {"source": p.source, "score": round(p.score, 6), "text": p.text, "chunk_id": p.chunk_id}
            for p in passages
        ],
    })


async def reload(request: Request) -> Response:
    require_admin(request)
    status = await rag_service(request).reload()
    return JSONResponse(status)


routes = [
    Route("/v1/rag/search", with_cancellation(search), methods=["POST"]),
    Route("/v1/rag/reload", reload, methods=["POST"]),
]
