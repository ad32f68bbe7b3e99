"""monolith: one in-process server for real-time voice assistants with retrieval."""

__version__ = "0.1.0"
