"""Slow clients against the webhook: latency of normal requests while N connections trickle their headers or
bodies (slowloris), for each way the webhook is served, in one run.

    .venv/bin/python -m bench.slowloris                  # 64 stalled connections, 20 s a variant
    .venv/bin/python -m bench.slowloris --stalled 256

Variants: the embedded default as `hashtale serve` runs it (waitress), gunicorn alone (what both used before: the
reference), and the compose layout (nginx with docker/nginx.conf in front of gunicorn; needs an nginx binary:
`apt-get install nginx-light`). Half of the stalled connections send one
header byte every TRICKLE seconds, the other half complete headers announcing a body they send one byte at a time.
A probe sends GET /healthz every PROBE_INTERVAL seconds (5 s timeout) on a fresh connection and reports p50/p99.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import machine
from hashtale.db.session import migrate
from hashtale.settings import PROJECT_ROOT
from hashtale.inference.tritonserver import free_port
from tests.support.slow_clients import TRICKLE, probe, stalled_client

PROBE_INTERVAL = 0.05  # seconds
START_TIMEOUT = 120.0  # seconds


def wait_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        if probe(port) is not None:
            return
        time.sleep(0.2)
    raise TimeoutError(log.read_text()[-3000:])


def attack(port: int, stalled: int, seconds: float) -> tuple[list[float], int]:
    stop = threading.Event()
    clients = [threading.Thread(target=stalled_client, args=(port, i % 2 == 1, stop), daemon=True)
               for i in range(stalled)]
    for c in clients:
        c.start()
    time.sleep(2 * TRICKLE)  # every stalled client is connected and trickling
    latencies, failures = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = probe(port)
        if result is None:
            failures += 1
        else:
            latencies.append(result)
        time.sleep(PROBE_INTERVAL)
    stop.set()
    return latencies, failures


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def start_gunicorn(env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "hashtale/webhook/gunicorn.conf.py",
                             "-b", f"127.0.0.1:{port}"], cwd=PROJECT_ROOT, env={**os.environ, **env},
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_listening(port, proc, log)
    return proc


def start_waitress(env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "hashtale.webhook.embedded_server", "--port", str(port)], cwd=PROJECT_ROOT,
                            env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_listening(port, proc, log)
    return proc


def start_nginx(upstream_port: int, port: int, workdir: Path) -> subprocess.Popen:
    conf = (PROJECT_ROOT / "docker" / "nginx.conf").read_text()
    conf = conf.replace("server webhook:8080;", f"server 127.0.0.1:{upstream_port};")
    conf = re.sub(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    conf = conf.replace("events {", f"pid {workdir}/nginx.pid;\nerror_log {workdir}/nginx-error.log;\nevents {{")
    conf = conf.replace("http {", f"http {{\n  access_log off;\n  client_body_temp_path {workdir}/body;\n"
                                  f"  proxy_temp_path {workdir}/proxy;")
    (workdir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([shutil.which("nginx"), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
                            stdout=(workdir / "nginx.log").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_listening(port, proc, workdir / "nginx.log")
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(machine.describe())
    print(f"{args.stalled} stalled "
          f"connections (one byte every {TRICKLE:.0f} s), probe GET /healthz every {PROBE_INTERVAL * 1000:.0f} ms")
    work = Path(tempfile.mkdtemp(prefix="bench-slowloris-"))
    database = f"sqlite:///{work / 'hashtale.sqlite'}"
    migrate(database)
    env = {"DATABASE_URL": database, "BROKER_URL": f"sqla+sqlite:///{work / 'broker.sqlite'}",
           "MEDIA_DIR": str(work / "media"), "METRICS_BIND": ""}
    variants = [("embedded default (waitress, as hashtale serve runs it)", start_waitress, False),
                ("gunicorn alone, no proxy (reference)", start_gunicorn, False)]
    if shutil.which("nginx"):
        variants.append(("compose layout (nginx, docker/nginx.conf, then gunicorn)", start_gunicorn, True))
    else:
        print("no nginx binary: the compose layout is not measured (apt-get install nginx-light)")
    print(f"{'variant':<58} {'p50 ms':>8} {'p99 ms':>8} {'timeouts':>9} {'probes':>7}")
    for name, start_server, proxied in variants:
        upstream = free_port()
        server = start_server(env, upstream, work / "server.log")
        front = start_nginx(upstream, free_port(), work) if proxied else None
        port = int(re.search(r"listen 127.0.0.1:(\d+)", (work / "nginx.conf").read_text()).group(1)) if proxied \
            else upstream
        try:
            latencies, failures = attack(port, args.stalled, args.seconds)
        finally:
            if front is not None:
                stop(front)
            stop(server)
        print(f"{name:<58} {1000 * percentile(latencies, 0.5):>8.1f} {1000 * percentile(latencies, 0.99):>8.1f} "
              f"{failures:>9} {len(latencies) + failures:>7}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
