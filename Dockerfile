# DisComfy in a container: `docker compose up -d` with compose.yaml, or
#   docker build -t discomfy . && docker run --env-file .env -v discomfy-data:/data discomfy
# Settings come from the environment (see the README's Configuration); state lives in /data.
FROM python:3.12-slim

# ffmpeg: videos are re-encoded to fit Discord's upload limit
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IMAGEIO_FFMPEG_EXE=/usr/bin/ffmpeg \
    DISCOMFY_DB_PATH=/data/discomfy.sqlite3 \
    DISCOMFY_MANIFESTS_DIR=/app/manifests \
    DISCOMFY_WORKFLOWS_DIR=/app/workflows \
    DISCOMFY_METRICS_HOST=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY bot ./bot
COPY manifests ./manifests
COPY workflows ./workflows
# the README's install step
RUN python3 -m pip install .

RUN groupadd --gid 10001 discomfy \
    && useradd --create-home --uid 10001 --gid 10001 discomfy \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]

HEALTHCHECK --interval=60s --timeout=30s --start-period=20s --retries=3 \
    CMD ["discomfy", "check", "--quick"]
ENTRYPOINT ["discomfy", "run"]
