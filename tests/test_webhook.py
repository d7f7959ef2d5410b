"""The webhook accepts posts (multipart and JSON), stores each once, enqueues it after the commit, and
reports status and results; on SQLite and PostgreSQL, with a real broker."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from hashtale.db.schema import Hashtag, Post, PostStatus, Story
from hashtale.settings import PROJECT_ROOT
from hashtale.inference.tritonserver import free_port
from tests.support.databases import PG_ADMIN_URL, fresh_database
from tests.support.images import EXIF_FIRST_TAG_TYPE_AT, encoded, photo_with_exif, rotated_jpeg
from tests.support.webhook import app_config, get_post, media_files, post_count, queued_post_ids, read_url
from hashtale.webhook.signature import HEADER, sign

ACCEPTED_KEYS = {"id", "external_id", "status", "status_url", "duplicate"}
POST_KEYS = {"id", "external_id", "status", "error", "attempts", "caption", "author", "created_at", "updated_at",
             "timings", "image_url", "hashtags", "story"}
CONCURRENT_DELIVERIES = 8
TIMINGS = {stage: {"queued_ms": 30.5, "batch_wait_ms": 12.5, "run_ms": 80.0, "batch_size": 4}  # as the worker writes
           for stage in ("tagging", "writing")}
REAL_PHOTOS = 5
GRID = (7, 7)
SERVER_START_TIMEOUT = 60.0  # seconds for gunicorn to import the app and bind
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the broker is "down"


def _post_photo(client, image: bytes, **fields):
    return client.post("/webhook", data={"image": (io.BytesIO(image), "photo.jpg"), **fields},
                       content_type="multipart/form-data")


def test_multipart_post_is_stored_then_enqueued(make_app):
    app = make_app()
    photo = encoded("JPEG")
    response = _post_photo(app.test_client(), photo, external_id="ig-1", caption="morning coffee", author="ana")

    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == ACCEPTED_KEYS
    assert body["external_id"] == "ig-1" and body["status"] == "received" and body["duplicate"] is False
    assert body["status_url"] == read_url(app, body["id"]) == response.headers["Location"]
    post = get_post(app, body["id"])
    assert (post.caption, post.author, post.status) == ("morning coffee", "ana", PostStatus.RECEIVED)
    assert (post.width, post.height, post.image_format, post.attempts) == (64, 48, "JPEG", 0)
    assert post.image_sha256 == hashlib.sha256(photo).hexdigest()
    assert media_files(app) == [Path(app.config["SETTINGS"].media_dir) / post.image_path]
    assert media_files(app)[0].read_bytes() == photo  # the photo as sent, byte for byte
    assert queued_post_ids(app) == [post.id]


def test_json_post_with_base64_or_a_data_url(make_app):
    app = make_app()
    client = app.test_client()
    png, webp = encoded("PNG"), encoded("WEBP")
    plain = client.post("/webhook", json={"external_id": "j-1", "caption": "c", "author": "a",
                                          "image": base64.b64encode(png).decode()})
    data_url = client.post("/webhook", json={"external_id": 12345,  # numeric ids are taken as text
                                             "image": "data:image/webp;base64," + base64.b64encode(webp).decode()})
    assert plain.status_code == data_url.status_code == 202
    first, second = get_post(app, plain.get_json()["id"]), get_post(app, data_url.get_json()["id"])
    assert (first.image_format, first.caption, first.author) == ("PNG", "c", "a")
    assert (second.image_format, second.external_id) == ("WEBP", "12345")
    assert sorted(queued_post_ids(app)) == sorted([first.id, second.id])


def test_redelivery_returns_the_same_post_and_enqueues_nothing_new(make_app):
    app = make_app()
    client = app.test_client()
    first = _post_photo(client, encoded("JPEG"), external_id="ig-7", caption="first")
    again = _post_photo(client, encoded("JPEG"), external_id="ig-7", caption="edited, other photo")
    assert first.status_code == again.status_code == 202
    assert again.get_json() == {**first.get_json(), "duplicate": True}
    assert post_count(app) == 1
    assert get_post(app, first.get_json()["id"]).caption == "first"
    assert len(media_files(app)) == 1  # the redelivered photo was not kept
    assert queued_post_ids(app) == [first.get_json()["id"]]


def test_without_an_external_id_the_photo_hash_identifies_the_post(make_app):
    app = make_app()
    client = app.test_client()
    photo = encoded("PNG")
    first = _post_photo(client, photo)
    again = client.post("/webhook", json={"image": base64.b64encode(photo).decode()})
    assert first.get_json()["external_id"] == "sha256:" + hashlib.sha256(photo).hexdigest()
    assert again.get_json()["id"] == first.get_json()["id"] and again.get_json()["duplicate"] is True
    assert post_count(app) == 1


def test_concurrent_duplicates_make_one_post(make_app):
    app = make_app()
    photo = encoded("JPEG")
    start = threading.Barrier(CONCURRENT_DELIVERIES)
    results = []

    def deliver():
        client = app.test_client()
        start.wait()
        results.append(_post_photo(client, photo, external_id="same-id"))

    threads = [threading.Thread(target=deliver) for _ in range(CONCURRENT_DELIVERIES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [202] * CONCURRENT_DELIVERIES
    assert len({r.get_json()["id"] for r in results}) == 1
    assert sum(not r.get_json()["duplicate"] for r in results) == 1
    assert post_count(app) == 1
    assert len(media_files(app)) == 1 and media_files(app)[0].read_bytes() == photo
    assert len(queued_post_ids(app)) == 1


def test_a_panorama_up_to_the_aspect_limit_is_accepted(make_app):
    from hashtale.models.image import MAX_ASPECT_RATIO

    response = _post_photo(make_app().test_client(), encoded("PNG", size=(16 * MAX_ASPECT_RATIO, 16)))
    assert response.status_code == 202, response.get_data(as_text=True)


def test_exif_orientation_is_applied_to_the_stored_size(make_app):
    app = make_app()
    response = _post_photo(app.test_client(), rotated_jpeg(width=40, height=20))
    post = get_post(app, response.get_json()["id"])
    assert (post.width, post.height) == (20, 40)


def test_real_photos(make_app, photo_paths):
    app = make_app()
    client = app.test_client()
    chosen = photo_paths[:: len(photo_paths) // REAL_PHOTOS][:REAL_PHOTOS]
    for path in chosen:
        response = _post_photo(client, path.read_bytes(), external_id="/".join(path.parts[-3:]))
        assert response.status_code == 202, response.get_json()
        post = get_post(app, response.get_json()["id"])
        with Image.open(path) as img:
            assert (post.width, post.height) == ImageOps.exif_transpose(img).size
    assert post_count(app) == len(media_files(app)) == len(queued_post_ids(app)) == REAL_PHOTOS


def test_signed_deliveries_are_accepted_when_a_secret_is_set(make_app):
    app = make_app(webhook_secret="s3cret")
    client = app.test_client()
    raw = json.dumps({"external_id": "signed-json", "image": base64.b64encode(encoded("JPEG")).decode()}).encode()
    as_json = client.post("/webhook", data=raw, content_type="application/json", headers={HEADER: sign("s3cret", raw)})
    photo = FileStorage(io.BytesIO(encoded("PNG")), filename="p.png", content_type="image/png")
    boundary, body = encode_multipart({"external_id": "signed-form", "image": photo})
    as_form = client.post("/webhook", data=body, content_type=f"multipart/form-data; boundary={boundary}",
                          headers={HEADER: sign("s3cret", body)})
    assert as_json.status_code == as_form.status_code == 202
    assert post_count(app) == 2


def test_multipart_with_bare_line_feeds_is_still_understood(make_app):
    app = make_app()
    photo = encoded("JPEG")
    body = (b'--b0undary\nContent-Disposition: form-data; name="external_id"\n\nlf-1\n'
            b'--b0undary\nContent-Disposition: form-data; name="image"; filename="a.jpg"\n'
            b"Content-Type: image/jpeg\n\n" + photo + b"\n--b0undary--\n")
    response = app.test_client().post("/webhook", data=body, content_type="multipart/form-data; boundary=b0undary")
    assert response.status_code == 202
    post = get_post(app, response.get_json()["id"])
    assert post.external_id == "lf-1" and media_files(app)[0].read_bytes() == photo


def test_subscription_check_echoes_the_challenge(make_app):
    app = make_app(verify_token="tok")
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    response = app.test_client().get("/webhook", query_string=query)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "1158201444" and response.mimetype == "text/plain"


def test_status_shows_hashtags_and_story(make_app):
    app = make_app()
    client = app.test_client()
    post_id = _post_photo(client, encoded("JPEG"), caption="beach").get_json()["id"]
    attention = (np.arange(GRID[0] * GRID[1], dtype=np.float64) / sum(range(GRID[0] * GRID[1]))).tolist()
    with app.extensions["database"].session_factory() as session:  # what the worker writes
        post = session.get(Post, post_id)
        for status in (PostStatus.TAGGING, PostStatus.TAGGED, PostStatus.WRITING, PostStatus.DONE):
            post.move_to(status)
        post.attempts = 2
        post.timings = TIMINGS
        session.add_all([
            Hashtag(post_id=post_id, rank=2, text="sea", score=0.25, attention=attention, attention_shape=list(GRID),
                    model_name="sat", model_version="v1"),
            Hashtag(post_id=post_id, rank=1, text="beach", score=0.5, attention=attention, attention_shape=list(GRID),
                    model_name="sat", model_version="v1"),
            Story(post_id=post_id, seed_hashtag="beach", hashtags=["beach", "sea"], text="Once upon a beach.", length=500, temperature=0.8,
                  top_k=20, random_seed=7, model_name="charlstm", model_version="v2"),
        ])
        session.commit()

    body = client.get(read_url(app, post_id)).get_json()
    assert set(body) == POST_KEYS
    assert (body["status"], body["attempts"], body["error"], body["caption"]) == ("done", 2, None, "beach")
    assert [(t["rank"], t["text"], t["score"]) for t in body["hashtags"]] == [(1, "beach", 0.5), (2, "sea", 0.25)]
    assert body["hashtags"][0]["attention"] == pytest.approx(attention)
    assert body["hashtags"][0]["attention_shape"] == list(GRID)
    assert body["hashtags"][0]["model_name"] == "sat" and body["hashtags"][0]["model_version"] == "v1"
    assert body["story"] == {"text": "Once upon a beach.", "seed_hashtag": "beach", "hashtags": ["beach", "sea"], "temperature": 0.8, "top_k": 20,
                             "length": 500, "model_name": "charlstm", "model_version": "v2"}
    assert body["created_at"].endswith("+00:00")
    assert body["timings"] == TIMINGS


def test_status_of_a_failed_post_shows_its_error(make_app):
    app = make_app()
    client = app.test_client()
    post_id = _post_photo(client, encoded("PNG")).get_json()["id"]
    with app.extensions["database"].session_factory() as session:
        post = session.get(Post, post_id)
        post.move_to(PostStatus.FAILED)
        post.error = "InvalidImage: corrupt"
        session.commit()
    body = client.get(read_url(app, post_id)).get_json()
    assert (body["status"], body["error"], body["hashtags"], body["story"]) == ("failed", "InvalidImage: corrupt", [],
                                                                                 None)


def test_image_endpoint_serves_the_stored_photo(make_app):
    app = make_app()
    client = app.test_client()
    photo = encoded("WEBP")
    post_id = _post_photo(client, photo).get_json()["id"]
    response = client.get(read_url(app, post_id, image=True))
    assert response.status_code == 200
    assert response.mimetype == "image/webp" and response.data == photo
    assert client.get(read_url(app, post_id)).get_json()["image_url"] == read_url(app, post_id, image=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    media_files(app)[0].unlink()  # a photo lost from disk is a 404, not a 500
    assert client.get(read_url(app, post_id, image=True)).status_code == 404


def test_broker_down_keeps_the_post_for_the_sweep(make_app, caplog):
    app = make_app(broker_url=CLOSED_PORT_REDIS)
    response = _post_photo(app.test_client(), encoded("JPEG"), external_id="while-broker-down")
    assert response.status_code == 202
    post = get_post(app, response.get_json()["id"])
    assert post.status == PostStatus.RECEIVED and media_files(app)
    assert "not enqueued" in caplog.text


def test_enqueues_on_redis(make_app, redis_url, queue_name):
    import redis

    app = make_app(broker_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        post_id = _post_photo(app.test_client(), encoded("JPEG")).get_json()["id"]
        assert client.llen(queue_name) == 1  # kombu's Redis transport: one list per queue
        assert queued_post_ids(app) == [post_id]
    finally:
        client.delete(queue_name)
        client.close()


def test_the_webhook_process_never_imports_torch(tmp_path, sqlite_template):
    """Validation decodes with Pillow only: PyTorch stays out of the webhook's memory and start-up."""
    database_url, _drop = fresh_database("sqlite", tmp_path, sqlite_template)
    script = f"""
import io, sys
from PIL import Image, ImageOps
from hashtale.webhook import create_app
app = create_app({{"database_url": {database_url!r}, "broker_url": "sqla+sqlite:///{tmp_path}/broker.sqlite",
                   "media_dir": "{tmp_path}/media"}})
buf = io.BytesIO(); Image.new("RGB", (32, 32), "blue").save(buf, "JPEG")
r = app.test_client().post("/webhook", data={{"image": (io.BytesIO(buf.getvalue()), "b.jpg")}})
assert r.status_code == 202, r.get_json()
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.fixture
def gunicorn_server(tmp_path, sqlite_template):
    """The webhook under gunicorn with its shipped config (one worker, two threads), on SQLite."""
    url, drop = fresh_database("sqlite", tmp_path, sqlite_template)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
           "MEDIA_DIR": str(tmp_path / "media"), "MAX_CONTENT_LENGTH": "20000", "PYTHONPATH": str(PROJECT_ROOT)}
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "hashtale/webhook/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
         "-w", "1", "--threads", "2"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                requests.get(f"{base}/posts/1", timeout=1)
                break
            except requests.RequestException:  # not listening yet, or still importing the app
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "gunicorn.log").read_text())
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        drop()


def test_under_gunicorn(gunicorn_server, coffee_jpeg):
    small = encoded("JPEG")
    accepted = requests.post(f"{gunicorn_server}/webhook", files={"image": ("p.jpg", small, "image/jpeg")},
                             data={"external_id": "gunicorn-1"}, timeout=30)
    assert accepted.status_code == 202
    status = requests.get(gunicorn_server + accepted.json()["status_url"], timeout=30)
    assert status.status_code == 200 and status.json()["external_id"] == "gunicorn-1"
    assert requests.get(gunicorn_server + status.json()["image_url"], timeout=30).content == small
    too_big = requests.post(f"{gunicorn_server}/webhook", files={"image": ("c.jpg", coffee_jpeg, "image/jpeg")},
                            timeout=30)
    assert too_big.status_code == 413 and "20000 bytes" in too_big.json()["message"]


def test_a_relative_media_dir_means_the_working_directory(make_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(media_dir="relative-media")
    photo = encoded("PNG")
    client = app.test_client()
    post_id = _post_photo(client, photo).get_json()["id"]
    assert [p.read_bytes() for p in (tmp_path / "relative-media").rglob("*.png")] == [photo]
    assert client.get(read_url(app, post_id, image=True)).data == photo


def test_database_down_is_a_503_to_retry_and_leaves_no_file(tmp_path, queue_name):
    from hashtale.webhook import create_app

    app = create_app(app_config("postgresql+psycopg://postgres@127.0.0.1:1/nothing", tmp_path, queue_name))
    response = _post_photo(app.test_client(), encoded("JPEG"))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "retry later" in response.get_json()["message"]
    assert queued_post_ids(app) == [] and media_files(app) == []


def test_after_the_database_drops_its_connections_one_post_is_refused_then_all_accepted(
        tmp_path, queue_name, postgresql_template):
    from sqlalchemy import create_engine, text
    from hashtale.webhook import create_app

    url, drop = fresh_database("postgresql", tmp_path, postgresql_template)
    app = create_app(app_config(url, tmp_path, queue_name))
    client = app.test_client()
    server = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        assert _post_photo(client, encoded("JPEG")).status_code == 202  # the pool now holds a connection
        with server.connect() as conn:  # what a database restart does to it
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": url.rsplit("/", 1)[1]})
        refused = _post_photo(client, encoded("JPEG"))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert [_post_photo(client, encoded("JPEG")).status_code for _ in range(3)] == [202] * 3
        assert post_count(app) == len(media_files(app)) == len(queued_post_ids(app)) == 4
    finally:
        app.extensions["database"].engine.dispose()
        server.dispose()
        drop()


def test_the_read_api_needs_the_token_of_the_status_url(make_app):
    app = make_app()
    client = app.test_client()
    first = _post_photo(client, encoded("PNG")).get_json()
    second = _post_photo(client, encoded("PNG")).get_json()
    assert client.get(first["status_url"]).status_code == 200
    for path in (f"/posts/{first['id']}", f"/posts/{first['id']}/image"):  # sequential ids alone open nothing
        assert client.get(path).status_code == 404
        assert client.get(path + "?token=guess").status_code == 404
    other_token = second["status_url"].partition("?")[2]
    assert client.get(f"/posts/{first['id']}?{other_token}").status_code == 404  # one post's token opens no other
    assert client.get(f"/posts/{first['id']}/image?{other_token}").status_code == 404


def test_an_outage_behind_a_dead_pooled_connection_leaves_no_file(tmp_path, queue_name, postgresql_template):
    """The pool holds a connection the server has dropped, and the server takes no new ones: a real outage."""
    from sqlalchemy import create_engine, text
    from hashtale.webhook import create_app

    url, drop = fresh_database("postgresql", tmp_path, postgresql_template)
    name = url.rsplit("/", 1)[1]
    app = create_app(app_config(url, tmp_path, queue_name))
    client = app.test_client()
    server = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        assert _post_photo(client, encoded("JPEG")).status_code == 202  # the pool now holds a connection
        with server.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                         {"name": name})
        refused = [_post_photo(client, encoded("JPEG")) for _ in range(4)]
        assert [r.status_code for r in refused] == [503] * 4
        assert len(media_files(app)) == 1
        with server.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        assert _post_photo(client, encoded("JPEG")).status_code == 202
        assert post_count(app) == len(media_files(app)) == 2
    finally:
        app.extensions["database"].engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        server.dispose()
        drop()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_malformed_exif_tag_besides_the_orientation_still_gives_an_upright_photo(make_app, fmt):
    app = make_app()
    response = _post_photo(app.test_client(), photo_with_exif(fmt, EXIF_FIRST_TAG_TYPE_AT))
    assert response.status_code == 202, response.get_data(as_text=True)
    post = get_post(app, response.get_json()["id"])
    assert (post.width, post.height) == (20, 30)  # stored 30x20, EXIF says rotate 90°


def _raw_request(base: str, head: bytes, body: bytes) -> int:
    """Send `head` + `body` on one connection, close our side, and return the status code of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)  # the client is done: the server sees the end of the body here
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_under_gunicorn_a_short_or_badly_chunked_body_is_a_400_that_stores_nothing(gunicorn_server, tmp_path):
    photo = FileStorage(io.BytesIO(encoded("JPEG")), filename="p.jpg", content_type="image/jpeg")
    boundary, body = encode_multipart({"image": photo})
    head = (f"POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Connection: close\r\n").encode()
    assert _raw_request(gunicorn_server, head + f"Content-Length: {len(body)}\r\n\r\n".encode(), body[:-100]) == 400
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    assert _raw_request(gunicorn_server, chunked, b"zz\r\n" + body + b"\r\n0\r\n\r\n") == 400
    assert _raw_request(gunicorn_server, chunked, f"{len(body):x}\r\n".encode() + body[:50]) == 400
    assert _raw_request(gunicorn_server, chunked, f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") == 202
    assert not list((tmp_path / "media").rglob("*.jpg"))[1:]  # only the complete post's photo


def test_the_fast_multipart_path_and_werkzeugs_decoder_agree():
    import random

    from hashtale.webhook import multipart

    rng = random.Random(0)
    for _ in range(300):
        fields = {name: bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
                  for name in rng.sample(["external_id", "caption", "author", "extra"], rng.randint(0, 4))}
        image = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        boundary = f"b{rng.randrange(10**9)}"
        body = b"".join(b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="' + name.encode()
                        + b'"\r\n\r\n' + value + b"\r\n" for name, value in fields.items())
        body += (b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
                 b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n--" + boundary.encode() + b"--\r\n")
        fast = multipart._split_crlf(body, boundary)
        assert fast is not None and fast == multipart._decode(body, boundary)  # raw bytes alike, whatever they are
