"""Admin review pages: log-in, the queue of posts, a post page with heat maps and the review form.

Registered by `hashtale.webhook.create_app`. Every view except log-in needs a session (GET: redirect to log-in,
other methods: 401); every POST carries a CSRF token (Flask-WTF) or is refused with 400.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")


@bp.record_once
def _configure_sessions(state) -> None:
    app = state.app
    settings = app.config["SETTINGS"]
    # Signed-cookie sessions: Flask refuses a cookie older than this, and refreshes it on every request (idle expiry).
    app.permanent_session_lifetime = timedelta(minutes=settings.admin_session_minutes)
    app.config["WTF_CSRF_TIME_LIMIT"] = int(app.permanent_session_lifetime.total_seconds())
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SECURE"] = settings.secure_cookies  # HTTPS deployments: SECURE_COOKIES=true


from hashtale.webhook.admin import auth, posts, queue  # noqa: E402,F401  (registers the views on bp)
