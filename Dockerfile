# One image for every einvoice process of docker-compose.yml (migrate, worker, beat, Flower and
# the Factus simulator); the compose command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md alembic.ini celeryconfig.py ./
COPY einvoice ./einvoice
COPY workers ./workers
COPY migrations ./migrations

# The migrations ship as the `migrations` package, so a regular install can run
# `einvoice db upgrade`.
RUN pip install .

# Run as an unprivileged user; beat keeps its schedule file in the one folder it may write.
RUN useradd --system --uid 10001 --no-create-home einvoice \
    && mkdir -p /var/lib/einvoice \
    && chown einvoice /var/lib/einvoice
USER einvoice

CMD ["einvoice", "--help"]
