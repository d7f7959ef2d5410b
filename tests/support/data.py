"""The shared datasets (../shared/datasets, or $HASHTALE_DATASETS) and the photos tests post."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from hashtale.settings import PROJECT_ROOT

SHARED_DATASETS = Path(os.environ.get("HASHTALE_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))
PHOTOS_DIR = SHARED_DATASETS / "photos"


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
