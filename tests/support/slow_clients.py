"""Slow clients (slowloris) and a probe of normal requests, for tests/test_slow_clients.py and bench/slowloris.py."""
from __future__ import annotations

import socket
import threading
import time

TRICKLE = 2.0  # seconds between two bytes of a stalled client
PROBE_TIMEOUT = 5.0  # seconds
SLOW_BODY_LENGTH = 1_000_000  # bytes announced by a slow-body client


def probe(port: int) -> float | None:
    """Seconds for one GET /healthz on a new connection, None on a timeout or an error."""
    began = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return time.perf_counter() - began if data.startswith(b"HTTP/1.1 200") else None
    except OSError:
        return None


def stalled_client(port: int, slow_body: bool, stop: threading.Event) -> None:
    """Trickle one byte every TRICKLE seconds until `stop`: the headers, or (slow_body) a body the headers announce."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
    except OSError:
        return
    head = (f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {SLOW_BODY_LENGTH}\r\n\r\n").encode()
    try:
        if slow_body:
            sock.sendall(head)
            trickle = b"x" * SLOW_BODY_LENGTH
        else:
            trickle = head
        for i in range(len(trickle)):
            if stop.wait(TRICKLE):
                break
            sock.sendall(trickle[i:i + 1])
    except OSError:
        pass  # the server dropped us: what a defended server may do
    finally:
        sock.close()
