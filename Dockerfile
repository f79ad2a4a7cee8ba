# Frontdesk in a container: the production command (`python app.py`) as a non-root user.
# Not built or run on the development machines (no docker there): tests/ops/test_dockerfile.py
# checks what can be checked without it. Build: docker build -t frontdesk .
# Run (an app id is required: without one Frontdesk is in local mode, which refuses HOST=0.0.0.0):
#   docker run --env-file frontdesk.env -p 3978:3978 -v frontdesk-data:/data --stop-timeout 50 frontdesk
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=3978 \
    DATABASE_URL=sqlite:////data/frontdesk.db

WORKDIR /app

RUN groupadd --system --gid 10001 frontdesk \
    && useradd --system --uid 10001 --gid frontdesk --home-dir /app --shell /usr/sbin/nologin frontdesk \
    && mkdir /data \
    && chown frontdesk:frontdesk /data

# Runtime dependencies only (no test tools); a layer of its own so code changes reuse it.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY app.py ./
COPY bot/ bot/
COPY cards/ cards/
COPY rooms/ rooms/
COPY catalogue/ catalogue/

USER 10001:10001
VOLUME ["/data"]
EXPOSE 3978

# Liveness only (/readyz also checks the database). slim has no curl: Python asks instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3978') + '/healthz', timeout=4)"]

# SIGTERM: Frontdesk stops taking connections, lets turns in flight finish (SHUTDOWN_TIMEOUT, 20 s by
# default) and the notifications they started (up to 20 s), so give `docker stop` 50 s, not its 10.
STOPSIGNAL SIGTERM
CMD ["python", "app.py"]
