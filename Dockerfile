# The gateway image: slim Python, non-root (uid 10001, which deploy/k8s runs it as), with a
# liveness healthcheck. Build and tag it as deploy/k8s expects, then push it to your registry:
#   docker build -t tfs-gateway:0.1.0 .
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
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app gateway \
    && mkdir -p /models && chown gateway /models

# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
ENV GATEWAY_CONFIG=/app/deploy/gateway-compose.yaml

# Liveness, like Kubernetes' livenessProbe: /healthz is 200 while the process serves.
# Not /readyz: that is 503 while a backend is down or during the shutdown drain, and a
# container marked unhealthy for it would be restarted by orchestrators that act on it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]

CMD ["gateway", "serve"]
