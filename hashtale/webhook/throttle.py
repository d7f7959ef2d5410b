"""Log-in throttling (Flask-Limiter): failed log-ins are counted per client address and per username.

Only failures count (a 401 answer), so an admin who types the password right is never slowed down by
earlier successes. Past the limit, `POST /admin/login` answers 429 with Retry-After until the window passes.

Where the counts live (`storage_uri`): `RATELIMIT_STORAGE_URL` when set; else the broker when it is Redis
(production: every gunicorn worker and host shares the counts); else `memory://`, counts per process, which
is the embedded default's single host. If Redis is down, counting falls back to memory rather than failing
every log-in.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from hashtale.settings import Settings

REDIS_SCHEMES = ("redis://", "rediss://")
MEMORY_STORAGE = "memory://"
FAILED_LOGIN_STATUS = 401
TOO_MANY = "too many failed log-ins from this address or for this username; retry after Retry-After seconds"

limiter = Limiter(key_func=get_remote_address, in_memory_fallback_enabled=True)


def storage_uri(settings: Settings) -> str:
    if settings.ratelimit_storage_url:
        return settings.ratelimit_storage_url
    if settings.broker_url.startswith(REDIS_SCHEMES):
        return settings.broker_url
    return MEMORY_STORAGE


def init_app(app: Flask) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(app.config["SETTINGS"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)  # Retry-After on the 429
    limiter.init_app(app)


def _login_limit() -> str:
    return current_app.config["SETTINGS"].login_rate_limit


def _failed(response: Response) -> bool:
    return response.status_code == FAILED_LOGIN_STATUS


def _username() -> str:
    return "username:" + request.form.get("username", "").strip().lower()


def throttle_failed_logins(view):
    """Decorate the log-in view: POSTs are refused once failures from this address, or for this username, pass
    the limit (the username limit stops one password guessed from many addresses)."""
    per_user = limiter.limit(_login_limit, key_func=_username, methods=["POST"], deduct_when=_failed,
                             error_message=TOO_MANY)
    per_address = limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed, error_message=TOO_MANY)
    return per_address(per_user(view))
