# The engine, the participant services, the dashboard and the load: one image, the
# command picks the process (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Import from the source tree: the Avro schemas (schemas/) are found next to the
    # `sagas` package, as in a checkout.
    PYTHONPATH=/app

WORKDIR /app

COPY pyproject.toml README.md ./
COPY sagas ./sagas
COPY services ./services
RUN pip install .

COPY schemas ./schemas

# faust writes its data folder (<app id>-data) into the working directory; the
# engine's, the services' and the dashboard's SQLite files go to /app/var (a volume in
# docker-compose.yml, which takes this folder's owner when it is created).
RUN useradd --create-home --uid 10001 sagas && mkdir -p /app/var && chown sagas /app /app/var
USER sagas

CMD ["sagas", "--help"]
