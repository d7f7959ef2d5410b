"""The embedded default's web server (`hashtale serve`): waitress, in one process.

waitress reads every request whole (headers, and the body, spooled to a temporary file past INBUF_OVERFLOW) in its
event loop before one of its threads runs the app, so a slow or stalled client holds a socket, never a thread
(bench/slowloris.py). gunicorn's threads read their requests themselves, so a few dozen slowloris connections
stall it: where gunicorn serves (compose), nginx buffers in front of it instead.

    python -m hashtale.webhook.embedded_server --host 127.0.0.1 --port 8080
"""
from __future__ import annotations

import argparse

from hashtale.monitoring import prepare_multiprocess_dir

CONNECTION_LIMIT = 1000  # open client connections; stalled ones count, so far above the 64 a test holds
CHANNEL_TIMEOUT = 30  # seconds a connection may send nothing at all before it is closed
INBUF_OVERFLOW = 1024 * 1024  # bytes of a body kept in memory; the rest goes to a temporary file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the webhook under waitress (the embedded default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    prepare_multiprocess_dir("webhook")  # before prometheus_client is imported (by the app)
    from waitress import serve

    from hashtale.monitoring.exposition import serve as serve_metrics
    from hashtale.webhook import create_app

    app = create_app()
    settings = app.config["SETTINGS"]
    serve_metrics(settings.metrics_bind, settings)
    serve(app, host=args.host, port=args.port, threads=settings.webhook_threads, connection_limit=CONNECTION_LIMIT,
          channel_timeout=CHANNEL_TIMEOUT, inbuf_overflow=INBUF_OVERFLOW, max_request_body_size=settings.max_content_length,
          asyncore_use_poll=True, ident="hashtale")


if __name__ == "__main__":
    main()
