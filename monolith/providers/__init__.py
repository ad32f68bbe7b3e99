"""Providers: one module per backend; the only place model libraries are imported (lazily)."""
