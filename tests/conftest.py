"""Shared fixtures: real PostgreSQL and Redis on 127.0.0.1, real photos from ../shared/datasets.

Every test session gets its own PostgreSQL database and its own Celery queue name, so parallel
sessions (and developers) never see each other's rows or messages.
"""
from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest

from settings import PROJECT_ROOT
from tests.scratch_db import scratch_pg_database

SHARED_DATASETS = Path(os.environ.get("HASHTALE_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))
PHOTOS_DIR = SHARED_DATASETS / "photos"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(config, items):
    # In CI a missing data folder is a failure, not a skip.
    if os.environ.get("CI") and not PHOTOS_DIR.is_dir():
        raise pytest.UsageError(f"CI needs the shared datasets at {SHARED_DATASETS}")


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """All real photos of the shared HARRISON-format set, in data_list.txt order."""
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    lines = (PHOTOS_DIR / "data_list.txt").read_text().split()
    return [PHOTOS_DIR / line for line in lines]


@pytest.fixture(scope="session")
def coffee_jpeg() -> bytes:
    """skimage's coffee photo as JPEG bytes."""
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    with scratch_pg_database("hashtale_test") as (_name, url):
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # fails loudly if Redis is down: .ci/run starts it
    client.close()
    return REDIS_URL


@pytest.fixture
def queue_name() -> str:
    """A Celery queue no other test (or test session) uses."""
    return f"hashtale-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hashtale.sqlite'}"
