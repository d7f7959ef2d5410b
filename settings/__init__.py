"""All configuration, read from the environment in one place.

Every process (webhook, worker, CLI, Triton client) builds a `Settings` with
`Settings.from_env()`; tests build one directly with overrides.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "var"

MIB = 1024 * 1024
DEFAULT_MAX_CONTENT_LENGTH = 16 * MIB  # bytes; a base64 JSON body of a 12 MB photo still fits
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # width*height; a 20000x20000 PNG bomb is 400 MP
DEFAULT_MAX_IMAGE_SIDE = 12_000  # px


def _default_database_url() -> str:
    return f"sqlite:///{DEFAULT_DATA_DIR / 'hashtale.sqlite'}"


def _default_broker_url() -> str:
    # kombu's SQLAlchemy transport: a real broker with no server, for the embedded default.
    return f"sqla+sqlite:///{DEFAULT_DATA_DIR / 'broker.sqlite'}"


# Field annotations are strings under `from __future__ import annotations`.
_PARSERS = {"str": str, "int": int, "float": float}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    broker_url: str = field(default_factory=_default_broker_url)
    inference_backend: str = "local"  # "local" (in-process PyTorch) or "triton"
    triton_url: str = "127.0.0.1:8000"
    triton_protocol: str = "http"  # "http" or "grpc"
    triton_timeout: float = 30.0  # seconds per inference call
    media_dir: str = field(default_factory=lambda: str(DEFAULT_DATA_DIR / "media"))
    webhook_secret: str = ""  # empty: X-Hub-Signature-256 not enforced
    verify_token: str = ""  # empty: subscription checks are refused
    secret_key: str = "dev-only-change-me"  # Flask sessions and CSRF
    admin_session_minutes: float = 60.0  # an admin session expires after this long without a request
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE
    hashtagger_checkpoint: str = ""  # empty: the shipped checkpoint in models/checkpoints/
    storyteller_checkpoint: str = ""
    encoder_precision: str = "auto"  # the hashtagger's encoder: "fp32", "bf16" or "auto" (models.tagger.PRECISIONS)
    hashtags_per_post: int = 5
    story_length: int = 500  # characters
    story_temperature: float = 0.6  # chosen with the storyteller's mention steering on photos/ and corel5k/ training posts
    story_top_k: int = 20
    task_max_retries: int = 8
    sweep_interval: float = 60.0  # seconds between sweeps for stuck posts
    stuck_after: float = 300.0  # seconds a post may sit in a non-final state before re-enqueue
    task_queue: str = "hashtale"
    retry_backoff: float = 2.0  # seconds before a task's first retry; doubles each retry, with jitter
    retry_backoff_max: float = 120.0  # seconds, the cap on one retry's delay
    torch_threads: int = 0  # intra-op threads per process for the local backend; 0: PyTorch's default

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Each field is read from the upper-cased environment variable of the same name."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _PARSERS[f.type](raw)
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)
