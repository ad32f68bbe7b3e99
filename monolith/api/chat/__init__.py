"""`POST /v1/chat/completions`, OpenAI-compatible: protocol.py (the request body and its
translation into the provider interface), serving.py (the completion, whole or streamed)."""

from starlette.routing import Route

from monolith.api.cancellation import with_cancellation
from monolith.api.chat.serving import create_chat_completion

routes = [Route("/v1/chat/completions", with_cancellation(create_chat_completion), methods=["POST"])]

__all__ = ["create_chat_completion", "routes"]
