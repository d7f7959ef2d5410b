"""The metric objects (see the package docstring for names and labels). Importing this module imports
prometheus_client, so PROMETHEUS_MULTIPROC_DIR must already be set in a multi-process service."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

NAMESPACE = "hashtale"
# seconds: webhook requests are milliseconds; tasks and model calls up to minutes on a loaded CPU
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WORK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
COMPLETION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds

HTTP_REQUESTS = Counter("http_requests", "Webhook requests answered", ["route", "method", "status"],
                        namespace=NAMESPACE)
HTTP_LATENCY = Histogram("http_request_duration_seconds", "Webhook request latency", ["route"],
                         namespace=NAMESPACE, buckets=REQUEST_BUCKETS)
TASK_RUNS = Counter("task_runs", "Task runs by outcome", ["task", "outcome"], namespace=NAMESPACE)
TASK_LATENCY = Histogram("task_duration_seconds", "Task run time", ["task"], namespace=NAMESPACE,
                         buckets=WORK_BUCKETS)
MODEL_LATENCY = Histogram("model_duration_seconds", "One model call, as the worker sees it", ["model", "backend"],
                          namespace=NAMESPACE, buckets=WORK_BUCKETS)
MODEL_BATCH = Histogram("model_batch_size", "Posts in one model call", ["model", "backend"], namespace=NAMESPACE,
                        buckets=BATCH_BUCKETS)
BATCH_WAIT = Histogram("batch_wait_seconds", "Time a message waited in the worker for its batch to go to a pool "
                       "process (to fill, at most BATCH_WAIT_MS, then for a free process)", ["task"],
                       namespace=NAMESPACE, buckets=WAIT_BUCKETS)
POST_COMPLETION = Histogram("post_completion_seconds", "Time from a post's receipt to done", namespace=NAMESPACE,
                            buckets=COMPLETION_BUCKETS)
