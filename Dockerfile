# syntax=docker/dockerfile:1
# One image for every Synod service (docs/adr/0005-one-image-for-all-services.md):
# the role is chosen by the command, `python -m synod_services.<role>`.

# --- build: resolve the pinned dependencies from pyproject.toml into a venv ---
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/synod
COPY pyproject.toml setup.py README.md ./
COPY libs/ libs/
COPY services/ services/
# Not editable: the runtime stage gets an installed package, not a pointer to /src.
RUN /opt/synod/bin/pip install .

# --- runtime: no compilers, no build context, a non-root user ---
FROM python:3.11-slim AS runtime
# Fixed numeric uid/gid so Kubernetes runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 synod \
 && useradd --system --uid 10001 --gid synod --home-dir /home/synod --create-home synod
# The code stays root-owned (the service cannot rewrite itself); the skaffold
# dev profile passes SOURCE_OWNER=10001 so file sync can update it in place.
ARG SOURCE_OWNER=root
COPY --from=build --chown=${SOURCE_OWNER} /opt/synod /opt/synod
# The Avro schemas are data, not package files: the wire layer finds them via SYNOD_SCHEMA_DIR.
COPY schemas/ /opt/synod-schemas/
ENV PATH=/opt/synod/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SYNOD_SCHEMA_DIR=/opt/synod-schemas \
    SYNOD_HEALTH_HOST=0.0.0.0 \
    SYNOD_HEALTH_PORT=9090
WORKDIR /home/synod
USER 10001:10001
EXPOSE 8080 9090
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz itself, and the port
# differs between the gateway and the other roles.
ENTRYPOINT ["python", "-m"]
CMD ["synod_services.gateway"]
