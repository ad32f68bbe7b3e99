"""Helpers of scripts/bench_peers.py: common.py (both sides), pipecat_side.py (the Pipecat venv)."""
