"""Seeded fuzzing of the webhook: mutated JPEG/PNG/WebP files (multipart) and mutated JSON bodies.

Whatever arrives, the answer is never a 5xx, no file is left without its post row, no row without its file,
and every accepted post, run through the worker's tasks (in this process, with the local models), ends `done`.

CI runs a few seeds; the full campaign is

    HASHTALE_FUZZ_IMAGES=2000 HASHTALE_FUZZ_JSON=1000 .venv/bin/python -m pytest -q tests/test_fuzz.py

Each case is reproducible from its seed (printed with any failure).
"""
from __future__ import annotations

import base64
import io
import json
import os
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from hashtale.db import Post, PostStatus
from hashtale.models.image import InvalidImage, preprocess
from hashtale.worker.celery_app import make_celery
from tests.support.images import encoded, photo_with_exif, rotated_jpeg
from tests.support.webhook import media_files

IMAGE_CASES = int(os.environ.get("HASHTALE_FUZZ_IMAGES", 60))
JSON_CASES = int(os.environ.get("HASHTALE_FUZZ_JSON", 30))
SEED_BASE = int(os.environ.get("HASHTALE_FUZZ_SEED", 0))
FUZZ_STORY_LENGTH = 60  # characters: the story stage runs, briefly
FORMATS = ("JPEG", "PNG", "WEBP")
# Strings a mutated JSON field may become: odd Unicode, escapes, control characters, very long text.
NASTY_TEXT = ["\ud800", "a\udfffb", "\x00", "\n\r", "\u202e", "é" * 300, "x" * 20_000, "", " ", "\\", "1e999",
              "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\ufeff", "%00", "<script>", "'; DROP TABLE posts; --"]
NASTY_VALUES = [None, True, 0, -1, 2**64, 1.5e308, [], {}, [[[]]], {"a": {"b": 1}}, "", 99999999999999999999]


def _base_images(rng: random.Random) -> list[bytes]:
    seed = rng.randrange(2**32)
    return [encoded(fmt, seed=seed) for fmt in FORMATS] + [photo_with_exif(fmt) for fmt in FORMATS] + [rotated_jpeg()]


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size (CRC fixed, so only the decoder can tell)."""
    ihdr = bytearray(data[8 + 8: 8 + 8 + 13])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return data[:16] + bytes(ihdr) + crc + data[8 + 8 + 13 + 4:]


def mutate_image(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        if kind == 0:  # flip bytes anywhere
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:  # flip bytes in the header, where sizes and chunk lengths live
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(min(len(data), 64))] = rng.randrange(256)
        elif kind == 2 and len(data) > 1:  # truncate
            del data[rng.randrange(1, len(data)):]
        elif kind == 3:  # duplicate a slice somewhere else
            start = rng.randrange(len(data))
            piece = data[start:start + rng.randint(1, 512)]
            at = rng.randrange(len(data))
            data[at:at] = piece
        elif kind == 4:  # append garbage, or a ZIP's end-of-central-directory record
            data += rng.choice([bytes(rng.randrange(256) for _ in range(rng.randint(1, 256))), b"PK\x05\x06" + b"\0" * 18])
        elif kind == 5 and data[:8] == b"\x89PNG\r\n\x1a\n":  # claim an extreme size
            width, height = rng.choice([(12000, 1), (1, 12000), (2**31 - 1, 1), (0, 5), (65535, 65535), (300, 14)])
            data = bytearray(_png_with_size(bytes(data), width, height))
        elif kind == 6:  # delete a slice
            start = rng.randrange(len(data))
            del data[start:start + rng.randint(1, 256)]
        if not data:
            data = bytearray(b"\0")
    return bytes(data)


def _mutate_doc(doc: dict, rng: random.Random) -> object:
    key = rng.choice(["image", "caption", "author", "external_id", "extra"])
    choice = rng.randrange(6)
    if choice == 0:
        doc[key] = rng.choice(NASTY_TEXT)
    elif choice == 1:
        doc[key] = rng.choice(NASTY_VALUES)
    elif choice == 2:
        doc.pop(key, None)
    elif choice == 3:  # nest the document, or a field
        return {"image": doc} if rng.random() < 0.5 else [doc]
    elif choice == 4 and isinstance(doc.get("image"), str) and doc["image"]:  # corrupt the base64 or its data: URL
        encoded_image = doc["image"]
        at = rng.randrange(len(encoded_image))
        doc["image"] = rng.choice(["data:image/png;base64," + encoded_image, "data:,x",
                                   encoded_image[:at] + rng.choice("=\n!é\ud800") + encoded_image[at:],
                                   encoded_image[:at]])
    elif choice == 5:
        doc[key] = rng.choice(NASTY_TEXT) * rng.randint(1, 3)
    return doc


def mutate_json(image: bytes, rng: random.Random) -> bytes:
    doc: object = {"image": base64.b64encode(image).decode(), "caption": "fuzz", "author": "f",
                   "external_id": f"fuzz-{rng.randrange(2**40)}"}
    for _ in range(rng.randint(1, 3)):
        doc = _mutate_doc(doc, rng) if isinstance(doc, dict) else doc
    body = bytearray(json.dumps(doc).encode())
    if rng.random() < 0.05:  # nested deeper than any parser's recursion: written as text
        depth = rng.choice([1500, 5000, 100_000])
        body = bytearray(b'{"image": ' + b"[" * depth + b"]" * depth + b"}")
    if rng.random() < 0.3:  # and sometimes break the bytes themselves
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.choice([0x00, 0x22, 0x5C, 0x7B, 0x80, 0xC3, 0xED, 0xFF])
    return bytes(body)


def _post(client, kind: str, body: bytes):
    if kind == "multipart":
        return client.post("/webhook", data={"image": (io.BytesIO(body), "fuzz.bin")},
                           content_type="multipart/form-data")
    return client.post("/webhook", data=body, content_type="application/json")


@pytest.mark.slow  # the fuzz campaign
def test_fuzzed_posts_never_fail_the_server_nor_leave_orphans(make_app):
    app = make_app(max_content_length=2 * 1024 * 1024)
    client = app.test_client()
    failures, statuses = [], Counter()
    cases = [("multipart", i) for i in range(IMAGE_CASES)] + [("json", i) for i in range(JSON_CASES)]
    for kind, i in cases:
        seed = SEED_BASE + i if kind == "multipart" else SEED_BASE + 1_000_000 + i
        rng = random.Random(seed)
        image = mutate_image(rng.choice(_base_images(rng)), rng)
        body = image if kind == "multipart" else mutate_json(image if rng.random() < 0.5 else encoded("PNG"), rng)
        try:
            status = _post(client, kind, body).status_code
        except Exception as exc:  # TESTING propagates what would have been a 500
            failures.append((kind, seed, repr(exc)[:200]))
            continue
        if status >= 500:
            failures.append((kind, seed, status))
        statuses[kind, status] += 1
    print(f"fuzz: {len(cases)} posts, answers by (kind, status): {dict(sorted(statuses.items()))}")
    assert failures == [], f"{len(failures)} server errors of {len(cases)} (kind, seed, error): {failures[:10]}"

    with app.extensions["database"].session_factory() as session:
        rows = {post.image_path for post in session.scalars(select(Post))}
    media_root = Path(app.config["SETTINGS"].media_dir)
    files = {path.relative_to(media_root).as_posix() for path in media_files(app)}
    assert files == rows  # no file without its row, no row without its file
    assert statuses["multipart", 202] + statuses["json", 202] >= len(rows) > 0
    unpreparable = []
    for relative in sorted(rows):
        try:
            preprocess((media_root / relative).read_bytes(), app.config["SETTINGS"].max_image_pixels,
                       app.config["SETTINGS"].max_image_side)
        except InvalidImage as exc:
            unpreparable.append((relative, str(exc)))
    assert unpreparable == []

    # Every accepted post goes through the worker's real tasks (in this process, local models) and ends `done`.
    settings = app.config["SETTINGS"].with_(story_length=FUZZ_STORY_LENGTH)
    celery = make_celery(settings)
    celery.set_current()
    with app.extensions["database"].session_factory() as session:
        accepted = list(session.scalars(select(Post.id)))
    for post_id in accepted:
        for task in ("suggest_hashtags", "write_story"):
            celery.tasks[f"worker.tasks.{task}"].apply(args=[post_id])
    with app.extensions["database"].session_factory() as session:
        not_done = [(p.id, p.status.value, p.error) for p in session.scalars(select(Post))
                    if p.status is not PostStatus.DONE]
    assert not_done == []
