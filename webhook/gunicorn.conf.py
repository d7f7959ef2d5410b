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
