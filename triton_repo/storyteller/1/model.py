"""Triton Python-backend model for the char-level storyteller: thin glue around hashtale/models/.

A request carries B >= 1 story specs (every input [B, 1], B up to max_batch_size; the service sends B = 1).
`execute` receives every request the dynamic batcher grouped and writes all their stories in ONE batched
sampling run (hashtale.models.storyteller_runtime.StoryWriter.write); each story depends only on its own spec. A request
with bad arguments fails alone, with INVALID_ARG, and is counted in Triton's /metrics as
hashtale_triton_request_failures_total{model, reason} (Triton counts it as a success: server#7713).
One response per request, in request order, with B rows.
"""
import json
import secrets
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from hashtale.models.serving import (
    INVALID_REQUEST_PREFIX, apply_torch_threads, failure_counter, instance_device, parameter, read_hashtags,
)
from hashtale.models.storyteller_runtime import StorySpec, StoryWriter

SEED_BITS = 63  # a fresh random seed fits the INT64 input


def column(request, name):
    """The input's B values ((B, 1) -> (B,)), or None when the optional input was not sent."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()[:, 0]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        apply_torch_threads(config)
        self.max_length = int(parameter(config, "max_length"))
        weights = Path(args["model_repository"]) / args["model_version"] / parameter(config, "weights")
        self.writer = StoryWriter.load(weights, device=instance_device(args, config))
        self.model_version = f"{self.writer.name}:{self.writer.version}".encode()
        self.count_failure = failure_counter(pb_utils, args["model_name"])

    def execute(self, requests):
        responses = [None] * len(requests)
        owners, specs = [], []  # the request index of each spec, and the specs of all good requests
        for i, request in enumerate(requests):
            try:
                rows = self.specs(request)
            except ValueError as exc:
                self.count_failure("invalid_request")
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(INVALID_REQUEST_PREFIX + str(exc), pb_utils.TritonError.INVALID_ARG))
                continue
            owners += [i] * len(rows)
            specs += rows
        with torch.inference_mode():
            stories = self.writer.write(specs) if specs else []
        by_request = {}
        for i, story in zip(owners, stories):
            by_request.setdefault(i, []).append(story.encode())
        for i, texts in by_request.items():
            responses[i] = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("STORY", np.array([[t] for t in texts], dtype=np.object_)),  # (B, 1)
                pb_utils.Tensor("MODEL_VERSION", np.full((len(texts), 1), self.model_version, dtype=np.object_)),
            ])
        return responses

    def specs(self, request):
        """The request's B StorySpecs; ValueError says what is wrong with them."""
        hashtags, seeds = column(request, "HASHTAGS"), column(request, "RANDOM_SEED")
        specs = []
        for row, (length, temperature, top_k) in enumerate(zip(column(request, "LENGTH"), column(request, "TEMPERATURE"),
                                                               column(request, "TOP_K"))):
            length, temperature, top_k = int(length), float(temperature), int(top_k)
            if not 1 <= length <= self.max_length:
                raise ValueError(f"LENGTH must be 1..{self.max_length}, got {length}")
            if not temperature >= 0:  # also refuses NaN
                raise ValueError(f"TEMPERATURE must be >= 0, got {temperature}")
            if top_k < 0:
                raise ValueError(f"TOP_K must be >= 0, got {top_k}")
            specs.append(StorySpec(hashtags=read_hashtags(hashtags[row]), length=length, temperature=temperature,
                                   top_k=top_k,
                                   random_seed=int(seeds[row]) if seeds is not None else secrets.randbits(SEED_BITS)))
        return specs
