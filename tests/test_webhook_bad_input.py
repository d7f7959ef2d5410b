"""Bad input: each gets a clear 4xx JSON error and leaves no row, no file and no queued task."""
from __future__ import annotations

import base64
import io
import json
import uuid

import pytest
from PIL import Image

from tests.support.databases import fresh_database
from tests.support.images import EXIF_TIFF_MAGIC_AT, photo_with_exif, png_bomb
from tests.support.webhook import app_config, media_files, post_count, queued_post_ids
from hashtale.webhook import create_app
from hashtale.webhook.signature import HEADER, sign

SECRET = "app-secret"
VERIFY_TOKEN = "verify-me"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def apps(request, tmp_path_factory):
    """One database per kind for the whole module: an open app, and one with a secret and a verify token."""
    folder = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    url, drop = fresh_database(request.param, folder, request.getfixturevalue(f"{request.param}_template"))
    queue = f"hashtale-test-{uuid.uuid4().hex[:12]}"
    open_app = create_app(app_config(url, folder, queue))
    signed_app = create_app(app_config(url, folder, queue, webhook_secret=SECRET, verify_token=VERIFY_TOKEN))
    yield {"open": open_app, "signed": signed_app}
    for app in (open_app, signed_app):
        app.extensions["database"].engine.dispose()
    drop()


@pytest.fixture(scope="module")
def truncated_jpeg(coffee_jpeg) -> bytes:
    return coffee_jpeg[: len(coffee_jpeg) // 2]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb()


@pytest.fixture(scope="module")
def gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="GIF")
    return buf.getvalue()


def _blank_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(image: bytes, **fields) -> dict:
    return {"data": {"image": (io.BytesIO(image), "photo.jpg"), **fields}, "content_type": "multipart/form-data"}


def _raw_multipart(image: bytes, caption: bytes, newline: bytes) -> dict:
    """A hand-made multipart body with `newline` line breaks (CRLF: the fast path; bare LF: Werkzeug's decoder)."""
    n = newline
    body = (b'--b0undary' + n + b'Content-Disposition: form-data; name="caption"' + n + n + caption + n
            + b'--b0undary' + n + b'Content-Disposition: form-data; name="image"; filename="a.jpg"' + n + n
            + image + n + b'--b0undary--' + n)
    return {"data": body, "content_type": "multipart/form-data; boundary=b0undary"}


def _json(doc) -> dict:
    return {"data": json.dumps(doc), "content_type": "application/json"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# name -> (which app, request builder taking the fixtures, expected status, a word the message must contain)
CASES = {
    "not an image": ("open", lambda f: _multipart(b"hello, I am not a photo"), 400, "not an image"),
    "empty image": ("open", lambda f: _multipart(b""), 400, "empty"),
    "truncated JPEG": ("open", lambda f: _multipart(f["truncated_jpeg"]), 400, "truncated"),
    "20000x20000 PNG bomb": ("open", lambda f: _multipart(f["bomb"]), 400, "too large"),
    "12000x1 PNG (77 bytes)": ("open", lambda f: _multipart(_blank_png(12000, 1)), 400, "square"),
    "1x21 PNG": ("open", lambda f: _multipart(_blank_png(1, 21)), 400, "square"),
    "GIF": ("open", lambda f: _multipart(f["gif"]), 400, "GIF"),
    "GIF as JSON": ("open", lambda f: _json({"image": _b64(f["gif"])}), 400, "GIF"),
    "oversized body": ("open", lambda f: _multipart(b"\xff" * f["max_content_length"]), 413, "large"),
    "malformed JSON": ("open", lambda f: {"data": b'{"image": "abc', "content_type": "application/json"}, 400,
                       "malformed JSON"),
    "JSON nested 1,500 deep": ("open", lambda f: {"data": b'{"image": ' + b"[" * 1500 + b"]" * 1500 + b"}",
                                                  "content_type": "application/json"}, 400, "nested"),
    "JSON that is not an object": ("open", lambda f: _json([1, 2, 3]), 400, "object"),
    "JSON without image": ("open", lambda f: _json({"caption": "no photo"}), 400, "image"),
    "bad base64": ("open", lambda f: _json({"image": "this is not base64!"}), 400, "base64"),
    "data URL not base64": ("open", lambda f: _json({"image": "data:image/jpeg,abcd"}), 400, "base64"),
    "multipart without image": ("open", lambda f: {"data": {"caption": "hi"}, "content_type": "multipart/form-data"},
                                400, "image"),
    "image as a plain field": ("open", lambda f: {"data": {"image": "abc"}, "content_type": "multipart/form-data"},
                               400, "image"),
    "plain text body": ("open", lambda f: {"data": b"hello", "content_type": "text/plain"}, 415, "multipart"),
    "external id too long": ("open", lambda f: _json({"image": _b64(f["coffee_jpeg"]), "external_id": "x" * 129}),
                             400, "external_id"),
    "external id not a string": ("open", lambda f: _json({"image": _b64(f["coffee_jpeg"]), "external_id": {"a": 1}}),
                                 400, "external_id"),
    "NUL in caption": ("open", lambda f: _multipart(f["coffee_jpeg"], caption="a\x00b"), 400, "NUL"),
    "author too long": ("open", lambda f: _multipart(f["coffee_jpeg"], author="a" * 257), 400, "author"),
    "lone surrogate in a JSON caption": ("open", lambda f: _json({"image": _b64(f["coffee_jpeg"]), "caption": "\ud800"}),
                                         400, "surrogate"),
    "lone surrogate in a JSON author": ("open", lambda f: _json({"image": _b64(f["coffee_jpeg"]), "author": "a\udfff"}),
                                        400, "surrogate"),
    "lone surrogate in a JSON external id": ("open", lambda f: _json({"image": _b64(f["coffee_jpeg"]),
                                                                      "external_id": "\ud800x"}), 400, "surrogate"),
    "invalid UTF-8 field, CRLF": ("open", lambda f: _raw_multipart(f["coffee_jpeg"], b"caf\xe9", b"\r\n"), 400,
                                  "UTF-8"),
    "invalid UTF-8 field, bare LF": ("open", lambda f: _raw_multipart(f["coffee_jpeg"], b"caf\xe9", b"\n"), 400,
                                     "UTF-8"),
    "multipart without closing boundary": ("open", lambda f: {**_raw_multipart(f["coffee_jpeg"], b"hi", b"\n"),
                                                              "data": _raw_multipart(f["coffee_jpeg"], b"hi",
                                                                                     b"\n")["data"][:-14]},
                                           400, "multipart"),
    "corrupt EXIF in a PNG": ("open", lambda f: _multipart(photo_with_exif("PNG", EXIF_TIFF_MAGIC_AT)), 400, "EXIF"),
    "corrupt EXIF in a WebP": ("open", lambda f: _multipart(photo_with_exif("WEBP", EXIF_TIFF_MAGIC_AT)), 400, "EXIF"),
    "missing signature": ("signed", lambda f: _json({"image": _b64(f["coffee_jpeg"])}), 403, "missing"),
    "wrong signature": ("signed", lambda f: {**_json({"image": _b64(f["coffee_jpeg"])}),
                                             "headers": {HEADER: sign("not-the-secret", b"{}")}}, 403, "match"),
    "signature of another body": ("signed", lambda f: {**_json({"image": _b64(f["coffee_jpeg"])}),
                                                       "headers": {HEADER: sign(SECRET, b"{}")}}, 403, "match"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_post_is_refused_and_leaves_nothing(case, apps, coffee_jpeg, truncated_jpeg, bomb, gif):
    which, build, status, word = CASES[case]
    app = apps[which]
    fixtures = {"coffee_jpeg": coffee_jpeg, "truncated_jpeg": truncated_jpeg, "bomb": bomb, "gif": gif,
                "max_content_length": app.config["SETTINGS"].max_content_length}
    rows_before = post_count(app)

    response = app.test_client().post("/webhook", **build(fixtures))

    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert body["status"] == status and body["error"]
    assert word.lower() in body["message"].lower()
    assert post_count(app) == rows_before
    assert media_files(app) == []
    assert queued_post_ids(app) == []


@pytest.mark.parametrize("query, status, word", [
    ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "42"}, 403, "verify_token"),
    ({"hub.mode": "subscribe", "hub.challenge": "42"}, 403, "verify_token"),
    ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}, 400, "subscribe"),
    ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400, "challenge"),
])
def test_bad_subscription_check_is_refused(apps, query, status, word):
    response = apps["signed"].test_client().get("/webhook", query_string=query)
    assert response.status_code == status
    assert word in response.get_json()["message"]


def test_subscription_check_without_a_configured_token_is_refused(apps):
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"}
    response = apps["open"].test_client().get("/webhook", query_string=query)
    assert response.status_code == 403
    assert "no verify token" in response.get_json()["message"]


@pytest.mark.parametrize("path", ["/posts/999999", "/posts/999999/image", "/posts/not-a-number", "/nowhere"])
def test_unknown_post_is_a_json_404(apps, path):
    response = apps["open"].test_client().get(path)
    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_wrong_method_is_a_json_405_that_says_what_is_allowed(apps):
    response = apps["open"].test_client().delete("/webhook")
    assert response.status_code == 405
    assert response.get_json()["error"] == "Method Not Allowed"
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
