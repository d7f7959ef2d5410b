"""X-Hub-Signature-256: the HMAC-SHA256 of the raw request body, keyed with the app secret, as Meta signs
webhook deliveries ("sha256=<hex digest>")."""
from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


class SignatureError(ValueError):
    """The delivery is not signed with our secret; the message says why, for the sender."""


def sign(secret: str, body: bytes) -> str:
    """The header value a sender holding `secret` puts on `body`."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check(secret: str, body: bytes, header: str | None) -> None:
    """Raise SignatureError unless `header` is the signature of `body` under `secret` (constant-time compare)."""
    if not header:
        raise SignatureError(f"missing {HEADER} header")
    expected = sign(secret, body).encode()
    # Header values arrive latin-1 decoded; compare bytes so that odd characters fail the check, not the server.
    given = header.strip().lower().encode("latin-1", errors="replace")
    if not hmac.compare_digest(expected, given):
        raise SignatureError(f"{HEADER} does not match the body")
