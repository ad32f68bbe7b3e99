#!/usr/bin/env bash
# Install what the tests need (scripts/install.sh test) and run the whole suite:
# ruff, mypy (strict), the import-layer contract, then pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
# Nothing comes from a model hub in tests; everything else is what a user has.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check monolith scripts tests
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
