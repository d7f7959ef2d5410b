"""Throwaway servers of our own that a test may stop and start without disturbing the shared ones."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from hashtale.inference.tritonserver import free_port

START_TIMEOUT = 30.0  # seconds for a server to accept connections
POLL = 0.05  # seconds
PG_USER = "postgres"  # PostgreSQL refuses to run as root: its processes run as this system user


class RedisServer:
    """A redis-server without persistence: a restart loses every queued message."""

    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir = port, workdir
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(POLL)
        client.close()

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    assert found, f"PostgreSQL's {name} is not installed"
    return str(found)


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb in a temporary folder, trust auth, 127.0.0.1 on a free port)."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hashtale-pg-"))
        self.url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"
        shutil.chown(self.dir, PG_USER)
        self._as_pg([_pg_bin("initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", PG_USER, "--no-sync"])

    def _as_pg(self, command: list[str]) -> None:
        subprocess.run(["runuser", "-u", PG_USER, "--", *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_pg([_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                     "-t", str(int(START_TIMEOUT)), "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                     "-c fsync=off", "start"])

    def stop(self) -> None:
        self._as_pg([_pg_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"])

    def close(self) -> None:
        subprocess.run(["runuser", "-u", PG_USER, "--", _pg_bin("pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
