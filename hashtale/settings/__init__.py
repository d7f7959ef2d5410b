"""All configuration, read from the environment in one place.

Every process (webhook, worker, CLI, Triton client) builds a `Settings` with
`Settings.from_env()`; tests build one directly with overrides.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sqlalchemy.engine import make_url

from hashtale.models.image import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "var"

MIB = 1024 * 1024
DEFAULT_MAX_CONTENT_LENGTH = 16 * MIB  # bytes; a base64 JSON body of a 12 MB photo still fits


def _default_database_url() -> str:
    return f"sqlite:///{DEFAULT_DATA_DIR / 'hashtale.sqlite'}"


def _default_broker_url() -> str:
    # kombu's SQLAlchemy transport: a real broker with no server, for the embedded default.
    return f"sqla+sqlite:///{DEFAULT_DATA_DIR / 'broker.sqlite'}"


FILE_SUFFIX = "_FILE"  # SECRET_KEY_FILE=/run/secrets/key reads SECRET_KEY from that file

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _parse_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"expected one of {sorted(TRUE_WORDS | FALSE_WORDS)}, got {raw!r}")
    return word in TRUE_WORDS


# Field annotations are strings under `from __future__ import annotations`.
_PARSERS = {"str": str, "int": int, "float": float, "bool": _parse_bool}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    database_password: str = ""  # set: replaces the password in DATABASE_URL (DATABASE_PASSWORD_FILE: a Docker secret)
    webhook_threads: int = 4  # gunicorn threads per webhook process = the database connections it may hold
    broker_url: str = field(default_factory=_default_broker_url)
    inference_backend: str = "local"  # "local" (in-process PyTorch) or "triton"
    triton_url: str = "127.0.0.1:8000"
    triton_protocol: str = "http"  # "http" or "grpc"
    triton_timeout: float = 30.0  # seconds per inference call
    media_dir: str = field(default_factory=lambda: str(DEFAULT_DATA_DIR / "media"))
    webhook_secret: str = ""  # empty: X-Hub-Signature-256 not enforced
    verify_token: str = ""  # empty: subscription checks are refused
    secret_key: str = ""  # Flask sessions and CSRF; empty: see hashtale/settings/secret_key.py
    admin_session_minutes: float = 60.0  # an admin session expires after this long without a request
    admin_enabled: bool = True  # serve the /admin review pages (compose: only its localhost-bound admin service)
    secure_cookies: bool = False  # True behind HTTPS: the session cookie is sent over HTTPS only
    trusted_hosts: str = ""  # comma-separated Host names the app answers (Flask's TRUSTED_HOSTS); empty: any
    # Failed admin log-ins allowed per client address and per username (Flask-Limiter syntax, ";" between limits).
    login_rate_limit: str = "5 per minute;30 per hour"
    ratelimit_storage_url: str = ""  # where log-in failures are counted; empty: see hashtale/webhook/throttle.py
    # Reverse proxies in front of the app whose X-Forwarded-For / X-Forwarded-Proto are believed (the client's
    # address for log-in throttling, https for cookies); 0: the app faces clients directly and ignores them.
    trusted_proxies: int = 0
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    max_image_pixels: int = DEFAULT_MAX_PIXELS  # width*height; the image limits' defaults live beside decode_image
    max_image_side: int = DEFAULT_MAX_SIDE  # px
    hashtagger_checkpoint: str = ""  # empty: the shipped checkpoint in hashtale/models/checkpoints/
    storyteller_checkpoint: str = ""
    encoder_precision: str = "auto"  # the hashtagger's encoder: "fp32", "bf16" or "auto" (hashtale.models.hashtagger_runtime.PRECISIONS)
    hashtags_per_post: int = 5
    story_length: int = 500  # characters
    story_temperature: float = 0.6  # chosen with the storyteller's mention steering on photos/ and corel5k/ training posts
    story_top_k: int = 20
    sweep_interval: float = 60.0  # seconds between sweeps for posts whose message was lost
    stuck_after: float = 300.0  # seconds a post's message may be gone (or its run silent) before re-enqueue
    media_gc_interval: float = 900.0  # seconds between removals of photo files no post references (hashtale/webhook/media_gc.py)
    retry_poll_interval: float = 5.0  # seconds between looks for parked posts that are due again
    task_queue: str = "hashtale"
    retry_backoff: float = 2.0  # seconds a post is parked after its first transient failure; doubles, with jitter
    retry_backoff_max: float = 60.0  # seconds, the cap on one parking (an outage's end is noticed within it)
    torch_threads: int = 0  # intra-op threads per process for the local backend; 0: PyTorch's default
    # Cross-post batching in the worker (hashtale/worker/batching.py): a pool process runs the model calls of up to
    # batch_size posts of a stage as one batched call. While a batch of the stage is under way, a new one waits for
    # more posts at most batch_wait_ms in all over a post's stages (half of it in each of the two); a post that finds
    # nothing of its stage under way does not wait.
    # 1: off, every post alone.
    batch_size: int = 16
    batch_wait_ms: float = 25.0
    metrics_bind: str = "127.0.0.1:9101"  # host:port of the webhook's /metrics; empty: off
    worker_metrics_bind: str = "127.0.0.1:9102"  # host:port of the worker's /metrics; empty: off
    worker_heartbeat_file: str = field(default_factory=lambda: str(DEFAULT_DATA_DIR / "worker.heartbeat"))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Each field is read from the upper-cased environment variable of the same name, or from the file that
        `<NAME>_FILE` names (Docker secrets; one trailing newline dropped) when that variable is unset."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if not raw and env.get(f"{f.name.upper()}{FILE_SUFFIX}"):
                raw = Path(env[f"{f.name.upper()}{FILE_SUFFIX}"]).read_text().removesuffix("\n")
            if raw is None or raw == "":
                continue
            values[f.name] = _PARSERS[f.type](raw)
        values.update(overrides)
        if values.get("database_password"):
            url = make_url(values.get("database_url") or _default_database_url())
            values["database_url"] = url.set(password=values["database_password"]).render_as_string(hide_password=False)
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)
