"""Run a local tritonserver from the `nvidia-pytriton` wheel's binary on our model repository.

`TritonServer` is a context manager (tests and bench use it); `hashtale triton` runs one in the foreground.

What the wheel's Python-backend stub needs, found by trying it:
- the stub binary for this Python version copied next to `libtriton_python.so` (we do it in a private
  temporary backend directory, so the installed wheel is never modified);
- `LD_LIBRARY_PATH` with the wheel's `nvidia_pytriton.libs` (the stub's libcudart; its RUNPATH is relative to
  the wheel's layout, which the copy breaks) and this interpreter's `LIBDIR` (the same libpython as the venv,
  not the distribution's);
- the venv's `bin` first on `PATH`: the stub embeds Python with an *isolated* configuration (PYTHONPATH and
  PYTHONHOME are ignored) and locates `python` on PATH, whose `pyvenv.cfg` puts the venv's site-packages
  (torch, numpy<2, and this project as installed) on sys.path.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from hashtale.inference.repository import REPOSITORY, export_stale_weights

HOST = "127.0.0.1"
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
READY_TIMEOUT = 300.0  # seconds: each model instance is a process that imports torch and loads weights
STOP_TIMEOUT = 60.0  # seconds to wait after SIGTERM before SIGKILL
EXIT_TIMEOUT = 30  # seconds tritonserver itself waits for in-flight requests on shutdown
POLL_INTERVAL = 0.25  # seconds between readiness probes
LOG_TAIL_CHARS = 4000  # of the server log quoted when it fails to start


class TritonStartError(RuntimeError):
    """tritonserver exited or did not become ready; the message quotes its log."""


def wheel_dir() -> Path:
    """The `pytriton/tritonserver` folder of the installed nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise TritonStartError("nvidia-pytriton is not installed (pip install nvidia-pytriton==0.7.0)")
    return Path(spec.origin).parent / "tritonserver"


def prepare_backends(directory: Path) -> Path:
    """Copy the wheel's backends into `directory` and add the Python stub for this interpreter's version."""
    source = wheel_dir()
    backends = directory / "backends"
    shutil.copytree(source / "backends", backends, ignore=shutil.ignore_patterns("__pycache__"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = source / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"the pytriton wheel has no Python backend stub for Python {version}")
    shutil.copy2(stub, backends / "python" / stub.name)
    return backends


def stub_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tritonserver (and so each model's stub process) runs with; see the module docstring."""
    env = dict(os.environ if base is None else base)
    libs = [str(wheel_dir().parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


# The Triton release by NGC container tag -> its server version. docker/triton.Dockerfile's tag must map to the version
# of the wheel's tritonserver, which the tests run (tests/test_compose.py, tests/test_triton.py check both ends).
TRITON_RELEASES = {"24.10": "2.51.0", "25.01": "2.54.0"}
WHEEL_TRITON_VERSION = "2.51.0"  # the tritonserver inside nvidia-pytriton 0.7.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class TritonServer:
    """A tritonserver process on 127.0.0.1 serving `repository`.

    Ports of 0 are chosen free at the first start and kept across `stop()`/`start()`, so clients keep their
    URL when the server is restarted (the retry test stops it while posts are in flight).
    """

    def __init__(self, repository: str | Path = REPOSITORY, *, http_port: int = 0, grpc_port: int = 0,
                 metrics_port: int = 0, log_path: str | Path | None = None, export: bool = True,
                 extra_args: tuple[str, ...] = ()):
        self.repository = Path(repository).resolve()
        self.ports = {"http": http_port or free_port(), "grpc": grpc_port or free_port(),
                      "metrics": metrics_port or free_port()}
        self.export = export
        self.extra_args = tuple(extra_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="hashtale-triton-"))
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self._backends: Path | None = None
        self._process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None  # of the last start, until ready

    @property
    def http_url(self) -> str:
        return f"{HOST}:{self.ports['http']}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.ports['grpc']}"

    def url(self, protocol: str) -> str:
        return self.grpc_url if protocol == "grpc" else self.http_url

    def command(self) -> list[str]:
        return [
            str(wheel_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends}",
            f"--http-address={HOST}", f"--http-port={self.ports['http']}",
            f"--grpc-address={HOST}", f"--grpc-port={self.ports['grpc']}",
            f"--metrics-address={HOST}", f"--metrics-port={self.ports['metrics']}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={EXIT_TIMEOUT}",
            *self.extra_args,
        ]

    def start(self, timeout: float = READY_TIMEOUT) -> "TritonServer":
        if self.is_running():
            return self
        if self.export:
            export_stale_weights(self.repository)
        if self._backends is None:
            self._backends = prepare_backends(self._workdir)
        began = time.monotonic()
        log = open(self.log_path, "ab")
        try:
            self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                             env=stub_environment(), start_new_session=True)
        finally:
            log.close()  # the child holds its own descriptor
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise TritonStartError(f"tritonserver exited during start-up:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(POLL_INTERVAL)
        raise TritonStartError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        return ""

    def stop(self) -> None:
        """SIGTERM (Triton finishes in-flight requests, then unloads), SIGKILL the group if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Stub processes belong to the server's session; none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


# `hashtale triton`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", default=str(REPOSITORY), help="Triton model repository (default: triton_repo/)")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, help=f"{name} port on {HOST}, 0: a free one")
    parser.add_argument("--no-export", action="store_true", help="do not export missing or stale weights first")
    parser.add_argument("--log", help="append tritonserver's log to this file (default: a temporary file)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    server = TritonServer(args.repository, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, export=not args.no_export, log_path=args.log)
    signal.signal(signal.SIGTERM, _interrupt)  # docker stop / systemd stop the server the same way as Ctrl-C
    try:
        server.start()
        print(f"tritonserver ready in {server.startup_seconds:.1f} s: http {server.http_url}, grpc {server.grpc_url}, "
              f"metrics {HOST}:{server.ports['metrics']}; log {server.log_path}; Ctrl-C stops it", flush=True)
        while server.is_running():
            time.sleep(1)
        print(f"tritonserver exited:\n{server.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except TritonStartError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        server.close()
