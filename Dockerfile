# AuthBridge container image: `make image`, or `docker compose up` (docker-compose.yml, docs/operations.md).
# Two stages: the first builds wheels (AuthBridge's and every dependency's); the second installs them
# into a virtualenv on a clean slim image, without compilers or the source tree, and runs as a
# non-root user. tests/test_container.py runs the same install and start commands in a clean venv.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels /src

FROM python:${PYTHON_VERSION}-slim
COPY --from=build /wheels /wheels
RUN python -m venv /opt/authbridge && /opt/authbridge/bin/pip install --no-cache-dir --no-index --find-links /wheels authbridge && rm -rf /wheels
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/authbridge authbridge
ENV PATH=/opt/authbridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTHBRIDGE_DATA_DIR=/var/lib/authbridge \
    AUTHBRIDGE_PORT=8000
USER authbridge
WORKDIR /var/lib/authbridge
EXPOSE 8000
# Liveness only: /ready (database, migrations, keys) is for the load balancer, not for restarts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AUTHBRIDGE_PORT', '8000') + '/health', timeout=4)"]
# SIGTERM: /ready answers 503 for AUTHBRIDGE_SHUTDOWN_DRAIN s, then requests in flight finish (docs/operations.md).
STOPSIGNAL SIGTERM
CMD ["authbridge", "run", "--host", "0.0.0.0"]
