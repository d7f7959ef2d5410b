"""What the Triton models (triton_repo/*/1/model.py) share with each other and with their client
(inference/triton.py): config parameters, the instance's device, and the error prefixes the client maps."""
from __future__ import annotations

import torch

from models.chars import clean_tag

# The client maps errors by these prefixes: bad bytes -> InvalidImage, bad arguments -> ValueError.
INVALID_IMAGE_PREFIX = "invalid image: "
INVALID_REQUEST_PREFIX = "invalid request: "


def parameter(config: dict, key: str) -> str:
    """A `parameters { key: ... value: { string_value: ... } }` entry of config.pbtxt."""
    return config["parameters"][key]["string_value"]


def instance_device(args: dict, config: dict) -> str:
    """The `device` parameter; "auto": the instance's GPU for KIND_GPU, else the CPU."""
    device = parameter(config, "device")
    if device != "auto":
        return device
    if args["model_instance_kind"] == "GPU":
        return f"cuda:{args['model_instance_device_id']}"
    return "cpu"


def apply_torch_threads(config: dict) -> None:
    """The `torch_threads` parameter; 0 keeps PyTorch's default (one per core)."""
    threads = int(parameter(config, "torch_threads"))
    if threads > 0:
        torch.set_num_threads(threads)


def hashtags_field(hashtags) -> bytes:
    """A hashtag set as the storyteller's HASHTAGS input: one UTF-8 string, space-separated, order kept, each
    hashtag as the model reads it (`clean_tag`: no '#', no whitespace, lower case)."""
    return " ".join(t for t in map(clean_tag, hashtags) if t).encode("utf-8")


def read_hashtags(field: bytes) -> tuple[str, ...]:
    """The hashtags of a `hashtags_field` string."""
    return tuple(field.decode("utf-8", errors="replace").split())
