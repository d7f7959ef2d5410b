"""Triton Python-backend model for the char-level storyteller: thin glue around models/.

`execute` receives every request the dynamic batcher grouped and writes all their stories in ONE batched
sampling run (models.writer.StoryWriter.write); each story depends only on its own spec. A request with bad
arguments fails alone, with INVALID_ARG. One response per request, in request order.
"""
import json
import secrets
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from models.serving import INVALID_REQUEST_PREFIX, apply_torch_threads, instance_device, parameter, read_hashtags
from models.writer import StorySpec, StoryWriter

SEED_BITS = 63  # a fresh random seed fits the INT64 input


def scalar(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()[0, 0]  # (1, 1) -> the value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        apply_torch_threads(config)
        self.max_length = int(parameter(config, "max_length"))
        weights = Path(args["model_repository"]) / args["model_version"] / parameter(config, "weights")
        self.writer = StoryWriter.load(weights, device=instance_device(args, config))
        self.model_version = np.array([[f"{self.writer.name}:{self.writer.version}".encode()]], dtype=np.object_)

    def execute(self, requests):
        responses = [None] * len(requests)
        indices, specs = [], []
        for i, request in enumerate(requests):
            try:
                specs.append(self.spec(request))
                indices.append(i)
            except ValueError as exc:
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(INVALID_REQUEST_PREFIX + str(exc), pb_utils.TritonError.INVALID_ARG))
        with torch.inference_mode():
            stories = self.writer.write(specs)
        for i, story in zip(indices, stories):
            responses[i] = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("STORY", np.array([[story.encode()]], dtype=np.object_)),  # (1, 1)
                pb_utils.Tensor("MODEL_VERSION", self.model_version),
            ])
        return responses

    def spec(self, request):
        """The request's StorySpec; ValueError says what is wrong with it."""
        if pb_utils.get_input_tensor_by_name(request, "HASHTAGS").as_numpy().shape[0] != 1:
            raise ValueError("send one story request per inference request")
        length = int(scalar(request, "LENGTH"))
        temperature = float(scalar(request, "TEMPERATURE"))
        top_k = int(scalar(request, "TOP_K"))
        seed = scalar(request, "RANDOM_SEED")
        if not 1 <= length <= self.max_length:
            raise ValueError(f"LENGTH must be 1..{self.max_length}, got {length}")
        if not temperature >= 0:  # also refuses NaN
            raise ValueError(f"TEMPERATURE must be >= 0, got {temperature}")
        if top_k < 0:
            raise ValueError(f"TOP_K must be >= 0, got {top_k}")
        return StorySpec(hashtags=read_hashtags(scalar(request, "HASHTAGS")), length=length,
                         temperature=temperature, top_k=top_k,
                         random_seed=int(seed) if seed is not None else secrets.randbits(SEED_BITS))
