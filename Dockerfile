# vpsbot: a small image that runs `python -m bot serve` as an unprivileged user.
#   docker build -t vpsbot .
#   docker run --env-file .env -p 3000:3000 vpsbot            # HTTP mode
#   docker run --env-file .env vpsbot python -m bot socket    # Socket Mode (behind a firewall)

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000
RUN useradd --system --uid 10001 --create-home --home-dir /app vpsbot
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# 200 while the process serves and its database answers (also in Socket Mode)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=2)"]
# uvicorn handles SIGTERM: in-flight work finishes (up to 20 s), leases are handed back
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "serve"]
