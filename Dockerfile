# The image of the einvoice processes of docker-compose.yml (migrate, worker, beat, Flower); the
# compose command picks the role. Build with `--build-arg EXTRAS=sandbox` for an image that can
# also run the Factus simulator (`einvoice sandbox serve`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The production dependencies, pinned with their hashes (`make lock` writes requirements.lock from
# pyproject.toml), in a layer of their own so a source change does not reinstall them. The
# simulator's (the `sandbox` extra) are not among them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md alembic.ini celeryconfig.py ./
COPY einvoice ./einvoice
COPY workers ./workers
COPY migrations ./migrations

# The project itself, with nothing resolved beyond the lock (its build backend is in it too).
# The migrations ship as the `migrations` package, so a regular install can run
# `einvoice db upgrade`.
RUN pip install --no-deps --no-build-isolation .
# Optional extras on top (EXTRAS=sandbox for the simulator's image); none in production.
ARG EXTRAS=""
RUN if [ -n "$EXTRAS" ]; then pip install --no-build-isolation ".[$EXTRAS]"; fi
# A lock older than pyproject.toml's dependencies fails the build here, not at run time.
RUN pip check

# Run as an unprivileged user; beat keeps its schedule file in the one folder it may write.
RUN useradd --system --uid 10001 --no-create-home einvoice \
    && mkdir -p /var/lib/einvoice \
    && chown einvoice /var/lib/einvoice
USER einvoice

CMD ["einvoice", "--help"]
