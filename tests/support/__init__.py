"""Test support: fixtures (registered as pytest plugins in tests/conftest.py) and helpers for tests and bench/."""
