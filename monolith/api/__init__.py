"""Transport only: HTTP and WebSocket routes translate to and from the layers below."""
