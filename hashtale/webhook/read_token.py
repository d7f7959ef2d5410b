"""The credential of the read API: each post's status URL carries a token only this server can compute.

token = HMAC-SHA256(SECRET_KEY, "post-read:<id>"), 128 bits, URL-safe base64. The webhook's 202 answer gives
the sender `status_url` with it, and the post's JSON gives `image_url` with it, so a sender needs nothing but the
URL it was handed; ids are sequential but a token cannot be guessed, and one leaked URL opens one post only.
Nothing is stored: changing SECRET_KEY invalidates every status URL (and every admin session).
"""
from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_BYTES = 16  # 128 bits
PURPOSE = b"post-read:"  # the key also signs sessions: a token is never valid as anything else


def read_token(secret_key: str, post_id: int) -> str:
    digest = hmac.new(secret_key.encode(), PURPOSE + str(post_id).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode()


def is_valid(secret_key: str, post_id: int, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(read_token(secret_key, post_id).encode(),
                                                     token.encode("utf-8", "replace"))
