# The gateway image: slim Python, non-root, with a readiness-based healthcheck.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY routers ./routers
COPY clients ./clients
COPY tfserving_compat ./tfserving_compat
COPY examples ./examples
COPY deploy ./deploy
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app gateway \
    && mkdir -p /models && chown gateway /models

USER gateway
EXPOSE 8000
ENV GATEWAY_CONFIG=/app/deploy/gateway-compose.yaml

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]

CMD ["gateway", "serve"]
