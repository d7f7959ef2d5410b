"""Benchmarks that print figures, run from the project root as modules: `.venv/bin/python -m bench.<name>`."""
