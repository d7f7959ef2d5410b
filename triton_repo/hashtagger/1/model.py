"""Triton Python-backend model for the attention hashtagger: thin glue around models/.

`execute` receives every request the dynamic batcher grouped; their images are decoded one by one (a bad
image fails only its own request, with INVALID_ARG) and the good ones run as ONE batched beam search per
distinct K (the encoder in chunks of `encode_chunk` images, see config.pbtxt). One response per request,
in request order.
"""
import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from models.image import InvalidImage, preprocess
from models.serving import INVALID_IMAGE_PREFIX, INVALID_REQUEST_PREFIX, apply_torch_threads, instance_device, parameter
from models.tagger import Tagger



class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        apply_torch_threads(config)
        weights = Path(args["model_repository"]) / args["model_version"] / parameter(config, "weights")
        self.encode_chunk = int(parameter(config, "encode_chunk"))
        self.device = instance_device(args, config)
        self.tagger = Tagger.load(weights, device=self.device, precision=parameter(config, "precision"))
        # Kernels for every chunk size now, not in the first requests' latency (the last chunk of a batch is smaller).
        self.tagger.warm_up(self.encode_chunk or config["max_batch_size"])
        self.model_version = np.array([[f"{self.tagger.name}:{self.tagger.version}".encode()]], dtype=np.object_)

    def execute(self, requests):
        responses = [None] * len(requests)
        groups = {}  # k -> ([request index], [image tensor (3, S, S)])
        for i, request in enumerate(requests):
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()  # (1, 1) bytes
            k = pb_utils.get_input_tensor_by_name(request, "K").as_numpy()  # (1, 1)
            if image.shape[0] != 1:
                responses[i] = error(INVALID_REQUEST_PREFIX + f"send one image per request, not {image.shape[0]}", pb_utils.TritonError.INVALID_ARG)
                continue
            try:
                x = preprocess(image[0, 0], size=self.tagger.input_size)  # (3, S, S)
            except InvalidImage as exc:
                responses[i] = error(INVALID_IMAGE_PREFIX + str(exc), pb_utils.TritonError.INVALID_ARG)
                continue
            indices, images = groups.setdefault(int(k[0, 0]), ([], []))
            indices.append(i)
            images.append(x)
        for k, (indices, images) in groups.items():
            if k < 1:
                for i in indices:
                    responses[i] = error(INVALID_REQUEST_PREFIX + f"K must be at least 1, got {k}", pb_utils.TritonError.INVALID_ARG)
                continue
            x = torch.stack(images).to(self.device)  # (B, 3, S, S)
            with torch.inference_mode():
                feats = self.tagger.encode(x, chunk=self.encode_chunk)  # (B, L, D)
                decoded = self.tagger.decode(feats, k)  # B ranked tag lists, one batched beam search
            for i, d in zip(indices, decoded):
                responses[i] = self.response(d.tags)
        return responses

    def response(self, predictions):
        # Models without attention (the multi-label baseline) send empty (0, 0) maps.
        has_attention = all(p.attention is not None for p in predictions)
        rows, cols = self.tagger.attention_shape if has_attention else (0, 0)
        tags = np.array([[p.text.encode() for p in predictions]], dtype=np.object_)  # (1, n)
        scores = np.array([[p.score for p in predictions]], dtype=np.float32)  # (1, n)
        attention = np.zeros((1, len(predictions), rows, cols), dtype=np.float32)  # (1, n, rows, cols)
        for j, p in enumerate(predictions if has_attention else ()):
            attention[0, j] = p.attention
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("HASHTAGS", tags),
            pb_utils.Tensor("SCORES", scores),
            pb_utils.Tensor("ATTENTION", attention),
            pb_utils.Tensor("MODEL_VERSION", self.model_version),
        ])


def error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
