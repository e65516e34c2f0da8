# syntax=docker/dockerfile:1
# Container images of Isthmus, for the k3d provider (and any real cluster).
#
# k3d users build the images and import them into their clusters:
#   docker build --target testapps -t isthmus/testapps:dev .   # test workloads
#   docker build --target isthmus  -t isthmus/isthmus:dev .    # the mesh and its CLI
#   k3d image import isthmus/testapps:dev isthmus/isthmus:dev -c <cluster>
# The netns provider builds no image: its kubelet stand-in maps these image names to the
# entry points installed in the same environment (`isthmus-testapp`, `isthmus`), so both
# providers run the same code.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project into a virtual environment --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/isthmus
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mesh ./mesh
COPY harness ./harness
RUN /opt/isthmus/bin/pip install .

# --- runtime: the environment alone, no build tools -----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/isthmus/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/isthmus /opt/isthmus

# --- testapps: echo server and load client (`server` / `client` subcommands) ---------
FROM runtime AS testapps
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin testapp
USER 65532
EXPOSE 8080 9090
ENTRYPOINT ["isthmus-testapp"]
CMD ["server"]

# --- isthmus: control plane, proxy and CLI (the default target) -----------------------
# iptables is here for the proxy's init step, which redirects pod traffic to the proxy.
FROM runtime AS isthmus
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["isthmus"]
