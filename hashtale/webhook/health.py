"""Liveness and readiness, for load balancers, compose and Kubernetes probes.

- `GET /healthz`: the process answers (no dependency is touched): 200 {"status": "ok"}.
- `GET /readyz`: every dependency a post needs right now answers: the database, the broker and, with
  INFERENCE_BACKEND=triton, the Triton server and both its models. 200 {"status": "ready", "checks": {...}},
  or 503 {"status": "unavailable", "failing": [names], "checks": {name: "ok" | reason}}.
Each check is bounded (READY_TIMEOUT, hashtale.worker.broker.TIMEOUT), so a probe never hangs on a dead dependency.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from hashtale.webhook.database import db
from hashtale.worker.broker import connect

bp = Blueprint("health", __name__)

READY_TIMEOUT = 2.0  # seconds per dependency check
OK = "ok"


def check_database() -> None:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()  # nothing to keep: hand the connection back to the pool at once


def check_broker() -> None:
    with connect(current_app.config["SETTINGS"].broker_url) as connection:
        connection.default_channel  # opens a channel: the broker accepts work, not only connections


def check_triton() -> None:
    from hashtale.inference.triton import TritonBackend

    settings = current_app.config["SETTINGS"]
    backend = TritonBackend(settings.triton_url, settings.triton_protocol, timeout=READY_TIMEOUT)
    try:
        backend.check_ready()  # the server and both models
    finally:
        backend.close()


def _checks() -> dict[str, Callable[[], None]]:
    checks = {"database": check_database, "broker": check_broker}
    if current_app.config["SETTINGS"].inference_backend == "triton":
        checks["triton"] = check_triton
    return checks


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    results = {}
    for name, check in _checks().items():
        try:
            check()
            results[name] = OK
        except Exception as exc:  # any failure of a dependency is "not ready", with its reason
            results[name] = f"{type(exc).__name__}: {exc}"[:500]
    failing = [name for name, result in results.items() if result != OK]
    if failing:
        current_app.logger.warning("not ready: %s", results)
        return jsonify(status="unavailable", failing=failing, checks=results), 503
    return jsonify(status="ready", checks=results)
