# The service on a slim Python base, as a non-root user, with the poster fonts (assets/) and migrations in the
# image. Nothing in this project runs Docker: this is the conventional shape, kept small (see the README).

# The docs pages' scripts, at the versions and integrities pinned in assets/docs/bundles.txt.
FROM node:20-slim AS docs
WORKDIR /src
COPY scripts/lib.sh scripts/
COPY assets/docs/bundles.txt assets/docs/*.LICENSE assets/docs/
RUN bash -euo pipefail -c 'source scripts/lib.sh && fetch_docs_bundles'

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    VAR_DIR=/app/var

WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mall

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir backend migrations && touch backend/__init__.py migrations/__init__.py \
    && pip install . && pip uninstall --yes mall-backend && rm -rf backend migrations

COPY backend ./backend
COPY migrations ./migrations
COPY assets ./assets
COPY --from=docs /src/assets/docs/vendor ./assets/docs/vendor
# Installed in place: the code finds assets/ and migrations/ beside it.
RUN pip install --no-deps -e . && mkdir -p var && chown mall:mall var

USER mall
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
CMD ["python", "-m", "backend", "serve"]
