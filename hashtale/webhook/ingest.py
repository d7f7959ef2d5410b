"""The webhook: Meta-style subscription check (GET) and post deliveries (POST), multipart or JSON.

A delivery is checked (signature, shape, image) before anything is written; then the post row is inserted, the
photo file written, the row committed (one short transaction), and only then is the first task enqueued. Bad input gets
a 4xx JSON error and leaves no row and no file.

Idempotency: a post is identified by its `external_id`; without one, by "sha256:<hex digest of the image>",
so re-posting the same photo is a redelivery too. A redelivery answers 202 with the existing post and
`"duplicate": true`, and enqueues nothing: a post stuck in `received` is re-enqueued by the worker's periodic
sweep, and a `failed` post is requeued by an admin, so the sender cannot start a second run by retrying.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from hashtale.db.schema import AUTHOR_MAX, EXTERNAL_ID_MAX, Post, PostStatus
from hashtale.models.image import DecodedImage, InvalidImage, decode_image
from hashtale.webhook import multipart, signature
from hashtale.webhook.database import db
from hashtale.webhook.media_gc import remove_unreferenced
from hashtale.webhook.posts import post_url
from hashtale.webhook.storage import MediaStore
from hashtale.worker.tasks import suggest_hashtags

CAPTION_MAX = 10_000  # characters; Instagram allows 2,200
DEFAULT_EXTERNAL_ID_PREFIX = "sha256:"
DATA_URL_PREFIX = "data:"
BASE64_MARKER = ";base64"
# A broker blip is retried briefly; a broker outage must not hold every request (the sweep enqueues later).
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}  # seconds

bp = Blueprint("ingest", __name__)
logger = logging.getLogger(__name__)  # a child of the app's logger ("hashtale.webhook")


@dataclass(frozen=True)
class Delivery:
    image: bytes  # the encoded photo, as sent
    external_id: str | None
    caption: str | None
    author: str | None


@bp.get("/webhook")
def verify_subscription() -> Response:
    """Answer Meta's subscription check by echoing hub.challenge when hub.verify_token is ours."""
    settings = current_app.config["SETTINGS"]
    mode = request.args.get("hub.mode")
    token = request.args.get("hub.verify_token", "")
    challenge = request.args.get("hub.challenge")
    if mode != "subscribe" or not challenge:
        abort(400, "expected hub.mode=subscribe with hub.verify_token and hub.challenge")
    if not settings.verify_token:
        abort(403, "subscription checks are disabled: no verify token is configured")
    if not hmac.compare_digest(token.encode(), settings.verify_token.encode()):
        abort(403, "wrong hub.verify_token")
    return Response(challenge, mimetype="text/plain")


@bp.post("/webhook")
def receive_post() -> tuple[Response, int, dict[str, str]]:
    settings = current_app.config["SETTINGS"]
    body = request.get_data(cache=True)  # raw bytes, for the signature; 413 above MAX_CONTENT_LENGTH
    if settings.webhook_secret:
        try:
            signature.check(settings.webhook_secret, body, request.headers.get(signature.HEADER))
        except signature.SignatureError as exc:
            abort(403, str(exc))
    delivery = _parse(body)
    try:
        decoded = decode_image(delivery.image, settings.max_image_pixels, settings.max_image_side)
    except InvalidImage as exc:
        abort(400, f"invalid image: {exc}")
    store = MediaStore(settings.media_dir)
    post, duplicate = store_post(db.session, store, delivery, decoded)
    if not duplicate:
        _enqueue(post.id)
    status_url = post_url("posts.get_post", post.id)
    payload = {"id": post.id, "external_id": post.external_id, "status": post.status.value,
               "status_url": status_url, "duplicate": duplicate}
    return jsonify(payload), 202, {"Location": status_url}


def store_post(session: Session, store: MediaStore, delivery: Delivery, decoded: DecodedImage) -> tuple[Post, bool]:
    """Insert the post, write its photo, commit; or find the post this delivery repeats. Returns (post, duplicate).

    The INSERT goes first, inside the transaction: a database that is down (a dead pooled connection included)
    or a redelivery (external_id is unique) fails there, before any file is written. The row becomes visible
    only at the commit, after the photo is on disk. If the commit itself fails, the new file goes too unless a
    post references it (checked under the file's lock); when even that check cannot reach the database, the
    file stays for `hashtale gc-media`.
    """
    sha256 = hashlib.sha256(delivery.image).hexdigest()
    external_id = delivery.external_id or DEFAULT_EXTERNAL_ID_PREFIX + sha256
    relative = store.relative_path(sha256, decoded.format)
    width, height = decoded.image.size
    post = Post(external_id=external_id, image_sha256=sha256, image_path=relative, image_format=decoded.format,
                width=width, height=height, caption=delivery.caption, author=delivery.author,
                status=PostStatus.RECEIVED, attempts=0)
    session.add(post)
    try:
        session.flush()
    except IntegrityError:
        # Almost always a redelivery, possibly racing its twin (whose commit this INSERT waited for).
        session.rollback()
        existing = session.scalars(select(Post).where(Post.external_id == external_id)).one_or_none()
        session.commit()  # ends the read transaction
        if existing is None:
            raise  # another constraint refused the row: nothing was stored
        return existing, True
    with store.locked(sha256):
        try:
            created = store.put(relative, delivery.image)
            session.commit()
        except SQLAlchemyError:
            session.rollback()
            if created:
                try:
                    remove_unreferenced(session, store, sha256, relative)
                except SQLAlchemyError:
                    logger.warning("database unavailable: kept %s for `hashtale gc-media`", relative)
            raise
    return post, False


def _enqueue(post_id: int) -> None:
    # This app's Celery (not whichever was created last): tests build several apps in one process.
    task = current_app.extensions["celery"].tasks[suggest_hashtags.name]
    try:
        task.apply_async((post_id,), retry_policy=PUBLISH_RETRY_POLICY)
    except Exception:  # any broker fault: kombu raises several kinds; the committed post must still be answered 202
        logger.exception("post %s is stored but not enqueued; the periodic sweep will enqueue it", post_id)


def _parse(body: bytes) -> Delivery:
    if request.mimetype == "multipart/form-data":
        return _parse_multipart(body)
    if request.is_json:
        return _parse_json(body)
    abort(415, "send multipart/form-data (file field image + form fields) or application/json (base64 image)")


def _parse_multipart(body: bytes) -> Delivery:
    try:
        form = multipart.parse(body, request.mimetype_params.get("boundary"))
    except multipart.InvalidMultipart as exc:
        abort(400, str(exc))
    image = form.files.get("image")
    if image is None:
        abort(400, "missing file field 'image'")
    return Delivery(
        image=image,
        external_id=_text_field("external_id", form.fields.get("external_id"), EXTERNAL_ID_MAX),
        caption=_text_field("caption", form.fields.get("caption"), CAPTION_MAX),
        author=_text_field("author", form.fields.get("author"), AUTHOR_MAX),
    )


def _parse_json(body: bytes) -> Delivery:
    try:
        doc = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        abort(400, f"malformed JSON: {exc}")
    except RecursionError:  # arrays or objects nested deeper than the interpreter's recursion limit
        abort(400, "malformed JSON: nested too deeply")
    if not isinstance(doc, dict):
        abort(400, "the JSON body must be an object")
    encoded = doc.get("image")
    if not isinstance(encoded, str):
        abort(400, "missing 'image': a base64 string (a data: URL is accepted too)")
    external_id = doc.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)  # numeric media ids, as some senders write them
    return Delivery(
        image=_decode_base64(encoded),
        external_id=_text_field("external_id", external_id, EXTERNAL_ID_MAX),
        caption=_text_field("caption", doc.get("caption"), CAPTION_MAX),
        author=_text_field("author", doc.get("author"), AUTHOR_MAX),
    )


def _decode_base64(encoded: str) -> bytes:
    if encoded.startswith(DATA_URL_PREFIX):
        header, _, encoded = encoded.partition(",")
        if not header.endswith(BASE64_MARKER):
            abort(400, "a data: URL image must be base64-encoded (data:image/jpeg;base64,...)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        abort(400, f"'image' is not valid base64 (standard alphabet, padded, no line breaks): {exc}")


def _text_field(name: str, value: object, max_length: int) -> str | None:
    """Every text field of a delivery, multipart (raw bytes) or JSON (str), is decoded and checked here.

    Absent or empty is None; anything else must be valid UTF-8 text (no lone surrogate such as JSON's
    "\\ud800", which no database can store), without NUL, that fits its column.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            abort(400, f"'{name}' is not UTF-8 text")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        abort(400, f"'{name}' must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        abort(400, f"'{name}' contains a lone UTF-16 surrogate, which is not text")
    if "\x00" in value:
        abort(400, f"'{name}' contains a NUL character")
    if len(value) > max_length:
        abort(400, f"'{name}' is longer than {max_length} characters")
    return value
