"""The suite's fixtures live in tests/support/, registered here as plugins; helpers are imported from there.

Tests use real PostgreSQL and Redis on 127.0.0.1 (marked `postgres`, `redis`: tests/support/markers.py) and real
photos from ../shared/datasets. Every test gets its own database and its own Celery queue name, so parallel
sessions (and developers) never see each other's rows or messages.
"""
pytest_plugins = [
    "tests.support.markers",
    "tests.support.data",
    "tests.support.databases",
    "tests.support.brokers",
    "tests.support.webhook",
    "tests.support.admin",
]
