"""What the Triton models (triton_repo/*/1/model.py) share with each other and with their client
(hashtale/inference/triton.py): config parameters, the instance's device, and the error prefixes the client maps."""
from __future__ import annotations

from hashtale.models.chars import clean_tag

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
    import torch  # here, not at the top: the webhook's readiness check imports the client, never PyTorch

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


FAILURES_METRIC = "hashtale_triton_request_failures_total"


def failure_counter(pb_utils, model: str):
    """A function(reason) counting one failed request of `model` in Triton's /metrics (the Python backend's custom
    metrics): Triton itself counts an error response as a success (triton-inference-server/server#7713)."""
    family = pb_utils.MetricFamily(name=FAILURES_METRIC, description="Requests a hashtale model answered with an error",
                                   kind=pb_utils.MetricFamily.COUNTER)
    metrics = {}

    def count(reason: str) -> None:
        if reason not in metrics:
            metrics[reason] = family.Metric(labels={"model": model, "reason": reason})
        metrics[reason].increment(1.0)

    return count
