"""gunicorn settings for the webhook: `gunicorn -c hashtale/webhook/gunicorn.conf.py`; command-line flags override
these.

Threads per worker overlap the waits of a request (fsync of the photo, the commit, the broker publish);
processes use the cores. bench/webhook.py measures the accept rate and the CPU time per post.
Each process holds at most `threads` database connections (hashtale/webhook/database.py), so a deployment's connections
are WEB_CONCURRENCY x WEBHOOK_THREADS per webhook container: set WEB_CONCURRENCY on big hosts (docker-compose.yml
writes the arithmetic down); without it, 2 processes a core, at most DEFAULT_MAX_WORKERS.
"""
import multiprocessing
import os

from hashtale.settings import Settings

DEFAULT_MAX_WORKERS = 8  # 8 x 4 threads = 32 connections, a third of PostgreSQL's default max_connections

wsgi_app = "hashtale.webhook.wsgi:app"
bind = os.environ.get("WEBHOOK_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2, DEFAULT_MAX_WORKERS)))
worker_class = "gthread"
threads = Settings.from_env().webhook_threads
keepalive = 5  # seconds an idle client connection stays open

# Metrics: every worker writes its samples under PROMETHEUS_MULTIPROC_DIR (set before the app is imported in any
# worker); the master serves their sum on METRICS_BIND (127.0.0.1:9101 by default, see hashtale/monitoring/).
from hashtale.monitoring import mark_process_dead, prepare_multiprocess_dir  # noqa: E402

prepare_multiprocess_dir("webhook")


def when_ready(server):
    from hashtale.monitoring.exposition import serve
    from hashtale.settings import Settings

    settings = Settings.from_env()
    serve(settings.metrics_bind, settings)


def child_exit(server, worker):
    mark_process_dead(worker.pid)
