"""The Flask app: the webhook that receives posts, and the read API for their results."""
from __future__ import annotations

from dataclasses import fields

from flask import Flask, Response, current_app, json
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

from hashtale.settings import Settings
from hashtale.webhook.body import CheckedBody
from hashtale.webhook.integers import BoundedIntConverter
from hashtale.settings.secret_key import resolve_secret_key
from hashtale.worker.celery_app import celery_init_app

SETTINGS_FIELDS = frozenset(f.name for f in fields(Settings))
RETRY_AFTER = 30  # seconds a sender should wait when the database is unavailable


def create_app(test_config: dict | None = None) -> Flask:
    """`test_config` maps Settings field names (e.g. "database_url") to values overriding the environment;
    any other key (e.g. "TESTING") goes to app.config as is."""
    overrides = dict(test_config or {})
    settings = Settings.from_env(**{k: v for k, v in overrides.items() if k in SETTINGS_FIELDS})

    app = Flask(__name__)
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    app.config.from_mapping(
        SETTINGS=settings,
        SECRET_KEY=resolve_secret_key(settings.secret_key, settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_content_length,
    )
    app.config.update({k: v for k, v in overrides.items() if k not in SETTINGS_FIELDS})

    from hashtale.webhook.database import db

    db.init_app(app)
    app.register_error_handler(HTTPException, _json_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(OperationalError, _database_unavailable)

    from hashtale.webhook import admin, headers, health, ingest, instrumentation, posts, throttle

    headers.init_app(app)
    throttle.init_app(app)
    instrumentation.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(ingest.bp)
    app.register_blueprint(posts.bp)
    if settings.admin_enabled:
        app.register_blueprint(admin.bp)

    celery_init_app(app)
    app.wsgi_app = CheckedBody(app.wsgi_app)
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    return app


def _json_error(exc: HTTPException) -> Response:
    """Every HTTP error as JSON: {"error": name, "message": description, "status": code}."""
    response = exc.get_response()  # keeps headers such as Allow (405) and Retry-After
    response.data = json.dumps({"error": exc.name, "message": exc.description, "status": exc.code})
    response.content_type = "application/json"
    return response


def _too_large(_exc: RequestEntityTooLarge) -> Response:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return _json_error(RequestEntityTooLarge(f"the request body is larger than the limit of {limit} bytes"))


def _database_unavailable(exc: OperationalError) -> Response:
    # Transient: the sender should retry the delivery later, and nothing was stored.
    current_app.logger.error("database unavailable: %s", exc, exc_info=exc)
    error = ServiceUnavailable("the database is unavailable; retry later", retry_after=RETRY_AFTER)
    return _json_error(error)
