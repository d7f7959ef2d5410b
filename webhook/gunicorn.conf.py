"""gunicorn settings for the webhook: `gunicorn -c webhook/gunicorn.conf.py`; command-line flags override these.

Threads per worker overlap the waits of a request (fsync of the photo, the commit, the broker publish);
processes use the cores. bench/webhook.py measures the accept rate and the CPU time per post.
"""
import multiprocessing
import os

wsgi_app = "webhook.wsgi:app"
bind = os.environ.get("WEBHOOK_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("WEBHOOK_THREADS", 4))
keepalive = 5  # seconds an idle client connection stays open

# Metrics: every worker writes its samples under PROMETHEUS_MULTIPROC_DIR (set before the app is imported in any
# worker); the master serves their sum on METRICS_BIND (127.0.0.1:9101 by default, see monitoring/).
from monitoring import mark_process_dead, prepare_multiprocess_dir  # noqa: E402

prepare_multiprocess_dir("webhook")


def when_ready(server):
    from monitoring.exposition import serve
    from settings import Settings

    settings = Settings.from_env()
    serve(settings.metrics_bind, settings)


def child_exit(server, worker):
    mark_process_dead(worker.pid)
