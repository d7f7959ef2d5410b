"""Request counts and latencies for Prometheus (hashtale/monitoring/), labelled by route pattern, never by raw path:
`/posts/<int:post_id>` is one series, whatever ids are asked for."""
from __future__ import annotations

import time

from flask import Flask, Response, g, request

UNMATCHED = "<unmatched>"  # a 404 for a path no route knows


def init_app(app: Flask) -> None:
    from hashtale.monitoring.metrics import HTTP_LATENCY, HTTP_REQUESTS

    @app.before_request
    def _start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response
