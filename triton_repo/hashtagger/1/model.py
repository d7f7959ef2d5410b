"""Triton Python-backend model for the attention hashtagger: thin glue around hashtale/models/.

A request carries a batch of B >= 1 images ([B, 1] IMAGE and K, B up to max_batch_size; the service sends B = 1,
perf_analyzer and other clients may send more). `execute` receives every request the dynamic batcher grouped;
their images are decoded one by one (a bad image fails its own request, with INVALID_ARG) and the good ones run
as ONE batched beam search per distinct K (the encoder in chunks of `encode_chunk` images, see config.pbtxt).
One response per request, in request order, with B rows: each row's hashtag set padded to the request's longest
with empty strings, zero scores and zero maps. Failed requests are also counted in Triton's /metrics as
hashtale_triton_request_failures_total{model, reason}: the Python backend reports an error response as a success
in nv_inference_request_success (triton-inference-server/server#7713).
"""
import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from hashtale.models.image import InvalidImage, preprocess
from hashtale.models.serving import (
    INVALID_IMAGE_PREFIX, INVALID_REQUEST_PREFIX, apply_torch_threads, failure_counter, instance_device, parameter,
)
from hashtale.models.hashtagger_runtime import Tagger


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        apply_torch_threads(config)
        weights = Path(args["model_repository"]) / args["model_version"] / parameter(config, "weights")
        self.encode_chunk = int(parameter(config, "encode_chunk"))
        self.max_pixels = int(parameter(config, "max_image_pixels"))
        self.max_side = int(parameter(config, "max_image_side"))
        self.device = instance_device(args, config)
        self.tagger = Tagger.load(weights, device=self.device, precision=parameter(config, "precision"))
        # Kernels for every chunk size now, not in the first requests' latency (the last chunk of a batch is smaller).
        self.tagger.warm_up(self.encode_chunk or config["max_batch_size"])
        self.model_version = f"{self.tagger.name}:{self.tagger.version}".encode()
        self.count_failure = failure_counter(pb_utils, args["model_name"])

    def execute(self, requests):
        responses = [None] * len(requests)
        rows = [None] * len(requests)  # per request: its B rows' predictions, filled below
        groups = {}  # k -> ([(request index, row)], [image tensor (3, S, S)])
        for i, request in enumerate(requests):
            images = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()  # (B, 1) bytes
            ks = pb_utils.get_input_tensor_by_name(request, "K").as_numpy()  # (B, 1)
            try:
                tensors = [preprocess(image, self.max_pixels, self.max_side, self.tagger.input_size)
                           for image in images[:, 0]]  # (3, S, S) each
            except InvalidImage as exc:
                responses[i] = self.error(INVALID_IMAGE_PREFIX + str(exc), "invalid_image")
                continue
            if int(ks.min()) < 1:
                responses[i] = self.error(INVALID_REQUEST_PREFIX + f"K must be at least 1, got {int(ks.min())}",
                                          "invalid_request")
                continue
            rows[i] = [None] * len(tensors)
            for row, (x, k) in enumerate(zip(tensors, ks[:, 0])):
                members, batch = groups.setdefault(int(k), ([], []))
                members.append((i, row))
                batch.append(x)
        for k, (members, batch) in groups.items():
            x = torch.stack(batch).to(self.device)  # (N, 3, S, S)
            with torch.inference_mode():
                feats = self.tagger.encode(x, chunk=self.encode_chunk)  # (N, L, D)
                decoded = self.tagger.decode(feats, k)  # N emitted tag sets, one batched beam search
            for (i, row), d in zip(members, decoded):
                rows[i][row] = d.tags
        for i, predictions in enumerate(rows):
            if responses[i] is None:
                responses[i] = self.response(predictions)
        return responses

    def response(self, rows):
        """rows: B lists of predictions -> HASHTAGS (B, n), SCORES (B, n), ATTENTION (B, n, rows, cols),
        MODEL_VERSION (B, 1), n the longest set; models without attention send empty (0, 0) maps."""
        n = max(len(predictions) for predictions in rows)
        has_attention = all(p.attention is not None for predictions in rows for p in predictions)
        grid = self.tagger.attention_shape if has_attention else (0, 0)
        tags = np.full((len(rows), n), b"", dtype=np.object_)
        scores = np.zeros((len(rows), n), dtype=np.float32)
        attention = np.zeros((len(rows), n, *grid), dtype=np.float32)
        for b, predictions in enumerate(rows):
            for j, p in enumerate(predictions):
                tags[b, j], scores[b, j] = p.text.encode(), p.score
                if has_attention:
                    attention[b, j] = p.attention
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("HASHTAGS", tags),
            pb_utils.Tensor("SCORES", scores),
            pb_utils.Tensor("ATTENTION", attention),
            pb_utils.Tensor("MODEL_VERSION", np.full((len(rows), 1), self.model_version, dtype=np.object_)),
        ])

    def error(self, message, reason):
        self.count_failure(reason)
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
