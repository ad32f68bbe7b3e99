"""Retrieval: the chunk store (SQLite), the vector index (FAISS), ingest, and the prompt hook."""
