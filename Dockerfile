# syntax=docker/dockerfile:1
#
# Celery Monitor image: runs the monitor by default (`celery-monitor`, port 5555) and the
# Kubernetes operator with the command `celery-monitor-operator`. Every setting comes from
# command-line options or CELERY_MONITOR_* environment variables; nothing is baked in.
#
#   docker build -t celery-monitor .
#   docker run -p 5555:5555 -e CELERY_MONITOR_BROKER=redis://redis:6379/0 celery-monitor

# --- web: the pages' scripts and styles, bundled by esbuild into celery_monitor/web/static/dist ------
FROM node:22.16.0-bookworm-slim AS web
WORKDIR /src/monitor/web/frontend
COPY celery_monitor/web/frontend/package.json celery_monitor/web/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY celery_monitor/web/frontend/ ./
RUN npm run build

# --- build: one wheel of both packages, installed with the operator extra into a venv ------
# The wheel build (setup.py) finds the web stage's bundle newer than its sources and uses it:
# no Node.js here. Without it, the build would stop rather than make a wheel without pages.
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/celery-monitor \
    PATH=/opt/celery-monitor/bin:$PATH \
    WHEEL_DIR=/tmp/wheels
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY build_support/ build_support/
COPY celery_monitor/ celery_monitor/
COPY operator/ operator/
COPY --from=web /src/monitor/web/static/ celery_monitor/web/static/
# `python` is the base image's until the venv exists; from then on PATH finds the venv's tools.
# --upgrade-deps: a current pip resolves and installs the dependencies much faster.
RUN python -m venv --upgrade-deps "$VIRTUAL_ENV" \
 && pip wheel --no-cache-dir --no-deps --wheel-dir "$WHEEL_DIR" . \
 && pip install --no-cache-dir "$(ls "$WHEEL_DIR"/celery_monitor-*.whl)[operator]" \
 && celery-monitor --version \
 && pip uninstall --yes --quiet pip setuptools

# --- runtime: slim Python, the venv, a numeric non-root user; no compilers, no caches ----------
FROM python:3.11.13-slim-bookworm
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="Celery Monitor" \
      org.opencontainers.image.description="Real-time monitor and control plane for Celery clusters, with a Kubernetes operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/celery-monitor/celery-monitor" \
      org.opencontainers.image.url="https://github.com/celery-monitor/celery-monitor" \
      org.opencontainers.image.documentation="https://github.com/celery-monitor/celery-monitor/tree/main/docs" \
      org.opencontainers.image.licenses="BSD-3-Clause" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.13-slim-bookworm"
ENV VIRTUAL_ENV=/opt/celery-monitor \
    PATH=/opt/celery-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 celery-monitor \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin celery-monitor \
 && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=build /opt/celery-monitor /opt/celery-monitor
# The default --db (celery-monitor.db) is relative, so it lands on the /data volume.
WORKDIR /data
USER 10001:10001
EXPOSE 5555
# `celery-monitor healthcheck` asks the liveness probe /livez (never behind auth), which fails
# when ingestion has stopped. It resolves the settings as the monitor does (environment, --conf,
# and the options the monitor was started with, read from PID 1), so the port, --url_prefix,
# --unix_socket and TLS (--certfile) are followed wherever they are set. The operator command
# ignores this (Kubernetes uses its own probes: /livez and /readyz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["celery-monitor", "healthcheck"]
ENTRYPOINT ["celery-monitor"]
