"""Each test is marked with the shared servers it needs, from the fixtures and parameters it uses, so a subset runs
with none running: `pytest -m "not postgres and not slow"` (a `redis` test talks to the redis-server the session
starts itself: tests/support/brokers.py). A test that reaches a server another way (its own
scratch database, say) carries the marker itself."""
from __future__ import annotations

import pytest

# marker -> the fixtures that connect to its server, and the parameter value that selects it (`database_url`,
# `broker_url`, ... parametrized by backend)
SERVERS = {
    "postgres": (frozenset({"pg_url", "postgresql_template"}), "postgresql"),
    "redis": (frozenset({"redis_url"}), "redis"),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        for marker, (fixtures, param) in SERVERS.items():
            if fixtures.intersection(item.fixturenames) or any(isinstance(v, str) and v == param for v in params):
                item.add_marker(getattr(pytest.mark, marker))
