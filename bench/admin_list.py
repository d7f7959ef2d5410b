"""How fast the admin queue renders with many posts: page 1 (and filtered / deep pages) on SQLite and PostgreSQL.

    .venv/bin/python -m bench.admin_list                 # 10,000 posts, both databases
    .venv/bin/python -m bench.admin_list --posts 50000 --no-postgres

Seeds a fresh database per backend (posts with 5 hashtags + attention maps, a story, a review state for
some), logs in, then times whole GET requests through the Flask app (routing, queries, template) and
prints median and 95th percentile per variant. The target: page 1 of 10,000 posts under 300 ms.
"""
from __future__ import annotations

import argparse
import io
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image
from sqlalchemy import create_engine, insert, text
from werkzeug.security import generate_password_hash

from hashtale.db import Hashtag, Post, PostStatus, Story, make_engine, migrate
from hashtale.db.reviews import Admin, ReviewState, ReviewStateChange
from tests.support.databases import PG_ADMIN_URL
from hashtale.webhook import create_app

TAGS = ["food", "coffee", "beach", "sunset", "cat", "dog", "love", "travel", "city", "flower", "car", "shoes"]
HASHTAGS_PER_POST = 5
GRID = 49  # 7x7 attention cells
REVIEWED_SHARE = 0.3  # posts with a review state
BATCH = 2000  # rows per INSERT
PASSWORD = "bench password"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
VARIANTS = {
    "page 1": "/admin/",
    "page 1, status=done": "/admin/?status=done",
    "page 1, review=unreviewed": "/admin/?review=unreviewed",
    "page 1, review=approved": "/admin/?review=approved",
    "page 1, tag=beach": "/admin/?tag=beach",
    "page 1, one day": "/admin/?since=2026-01-03&until=2026-01-03",
    "last page": None,  # filled in from the post count
}


def seed(url: str, posts: int, media_dir: Path) -> None:
    rng = random.Random(0)
    media_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buf, "JPEG")
    (media_dir / "bench.jpg").write_bytes(buf.getvalue())
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Admin), [{"username": "bench", "password_hash": generate_password_hash(PASSWORD),
                                      "created_at": T0}])
        for start in range(0, posts, BATCH):
            ids = range(start + 1, min(posts, start + BATCH) + 1)
            conn.execute(insert(Post), [{
                "id": i, "external_id": f"bench-{i}", "image_sha256": "0" * 64, "image_path": "bench.jpg",
                "image_format": "JPEG", "width": 64, "height": 64, "caption": f"caption of post {i}",
                "author": f"user{i % 97}", "status": PostStatus.DONE if i % 20 else PostStatus.FAILED, "attempts": 1,
                "created_at": T0 + timedelta(minutes=i), "updated_at": T0 + timedelta(minutes=i)} for i in ids])
            rows = []
            for i in ids:
                weights = [rng.random() for _ in range(GRID)]
                total = sum(weights)
                for rank, tag in enumerate(rng.sample(TAGS, HASHTAGS_PER_POST), start=1):
                    rows.append({"post_id": i, "rank": rank, "text": tag, "score": 0.9 / rank,
                                 "attention": [round(w / total, 5) for w in weights], "attention_shape": [7, 7],
                                 "model_name": "sat-effnetlite0", "model_version": "bench", "created_at": T0})
            conn.execute(insert(Hashtag), rows)
            conn.execute(insert(Story), [{
                "post_id": i, "seed_hashtag": "food", "hashtags": ["food"], "text": "Once upon a time " * 30, "length": 500,
                "temperature": 0.8, "top_k": 20, "random_seed": i, "model_name": "char-lstm", "model_version": "bench",
                "created_at": T0} for i in ids])
            states = [{"post_id": i, "state": rng.choice([ReviewState.REVIEWED, ReviewState.APPROVED,
                                                          ReviewState.REJECTED]), "admin_id": 1, "created_at": T0}
                      for i in ids if rng.random() < REVIEWED_SHARE]
            if states:
                conn.execute(insert(ReviewStateChange), states)
    engine.dispose()


def measure(url: str, media_dir: Path, posts: int, repeat: int) -> dict[str, tuple[float, float, int]]:
    """variant -> (median ms, p95 ms, bytes)."""
    app = create_app({"database_url": url, "media_dir": str(media_dir), "secret_key": secrets.token_hex()})
    client = app.test_client()
    html = client.get("/admin/login").get_data(as_text=True)
    token = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert client.post("/admin/login", data={"csrf_token": token, "username": "bench",
                                             "password": PASSWORD}).status_code == 302
    results = {}
    for name, path in VARIANTS.items():
        path = path or f"/admin/?page={-(-posts // 50)}"
        client.get(path)  # warm: connection pool, template compilation, database cache
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get(path)
            times.append(1000 * (time.perf_counter() - start))
            assert response.status_code == 200, response.status_code
        times.sort()
        results[name] = (statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))],
                         len(response.data))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per variant")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        media = Path(tmp) / "media"
        backends = {"sqlite": f"sqlite:///{tmp}/bench.sqlite"}
        pg_name = f"hashtale_bench_{uuid.uuid4().hex[:10]}"
        server = None
        if not args.no_postgres:
            server = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
            with server.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
            backends["postgresql"] = args.pg_admin_url.rsplit("/", 1)[0] + "/" + pg_name
        try:
            print(f"admin queue, {args.posts:,} posts, {args.repeat} requests per variant (ms per whole request)")
            print(f"{'backend':<11} {'variant':<28} {'median':>8} {'p95':>8} {'KiB':>6}")
            for backend, url in backends.items():
                migrate(url)
                start = time.perf_counter()
                seed(url, args.posts, media)
                print(f"{backend:<11} (seeded in {time.perf_counter() - start:.1f} s)")
                for name, (median, p95, size) in measure(url, media, args.posts, args.repeat).items():
                    print(f"{backend:<11} {name:<28} {median:8.1f} {p95:8.1f} {size / 1024:6.1f}")
        finally:
            if server is not None:
                with server.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                server.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
