"""Self-describing checkpoints (as in nanoGPT): weights, model args, vocabulary, step and metrics in one
file, so a model is rebuilt from the file alone, on any device, without the training data."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, *, kind: str, model: torch.nn.Module, model_args: dict[str, Any],
                    vocab: list[str], step: int, metrics: dict[str, float], optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written checkpoint.

    `half=True` stores floating weights as float16 (for shipped, inference-only checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "model_args": model_args,
        "vocab": list(vocab),
        "step": step,
        "metrics": metrics,
        "model": state,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load onto the CPU whatever device it was saved from; weights come back as float32."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    if kind is not None and payload.get("kind") != kind:
        raise ValueError(f"{path} holds a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    payload["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["model"].items()}
    return payload


def file_version(path: str | Path) -> str:
    """A short, stable version string for a checkpoint file: the first 12 hex digits of its SHA-256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest[:12]


def update_checkpoint(path: str | Path, *, model_args: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> Path:
    """Change entries of a checkpoint's model args and extra in place (atomically), the weights untouched (float16
    stays float16); an entry set to None is removed."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    for section, changes in (("model_args", model_args), ("extra", extra)):
        merged = {**payload.get(section, {}), **(changes or {})}
        payload[section] = {k: v for k, v in merged.items() if v is not None}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def update_model_args(path: str | Path, **changes: Any) -> Path:
    """Change entries of a checkpoint's model args (see update_checkpoint)."""
    return update_checkpoint(path, model_args=changes)
