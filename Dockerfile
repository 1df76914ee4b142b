# fleet's hub as a container: `fleet run` with git, kubectl (kustomize inside), helm and krender.
#
#   docker build -t fleet .
#   docker run -v $PWD/clusters:/clusters:ro -v $PWD/config:/config:ro -p 8080:8080 fleet
#
# Every version is pinned; downloads are checked against the sha256 pinned here (linux/amd64).
# The image runs as an unprivileged user (uid 10001) and needs no write access but /var/lib/fleet
# (sync history) and /var/cache/fleet (git mirrors, render cache: rebuildable).
#
# In a cluster, deploy/helm/fleet runs this image with a read-only root filesystem (emptyDirs at
# /var/lib/fleet, /var/cache/fleet and /tmp), as uid 10001, with its own arguments (config from a
# ConfigMap at /config, kubeconfigs from a Secret at /clusters, API tokens at /etc/fleet/tokens).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG GO_IMAGE=golang:1.26.8-bookworm

# krender: our batch kustomize renderer (fleet/render/krender.py), built from its pinned module
FROM ${GO_IMAGE} AS krender
WORKDIR /src
COPY fleet/controlplane/gomod/krender ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/krender .

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fleet ./fleet
RUN pip install --no-cache-dir --no-compile --root-user-action=ignore --prefix=/install .

FROM ${PYTHON_IMAGE}
ARG KUBECTL_VERSION=v1.33.0
ARG KUBECTL_SHA256=9efe8d3facb23e1618cba36fb1c4e15ac9dc3ed5a2c2e18109e4a66b2bac12dc
ARG HELM_VERSION=v3.16.2
ARG HELM_SHA256=9318379b847e333460d33d291d4c088156299a26cd93d570a7f5d0c36e50b5bb
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        git=1:2.39.5-0+deb12u3 \
        openssh-client=1:9.2p1-2+deb12u10 \
        ca-certificates=20250419~deb12u2 \
        curl=7.88.1-10+deb12u15 \
    && curl -fsSLo /usr/local/bin/kubectl \
        "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" \
    && echo "${KUBECTL_SHA256}  /usr/local/bin/kubectl" | sha256sum -c - \
    && chmod 0755 /usr/local/bin/kubectl \
    && curl -fsSLo /tmp/helm.tar.gz "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" \
    && echo "${HELM_SHA256}  /tmp/helm.tar.gz" | sha256sum -c - \
    && tar -xzf /tmp/helm.tar.gz -C /usr/local/bin --strip-components=1 linux-amd64/helm \
    && rm /tmp/helm.tar.gz \
    && apt-get purge -y --auto-remove curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /var/lib/fleet --create-home fleet \
    && install -d -o fleet -g fleet /var/cache/fleet /clusters /config

COPY --from=build /install /usr/local
COPY --from=krender /out/krender /usr/local/bin/krender

ENV FLEET_CACHE_DIR=/var/cache/fleet \
    FLEET_KRENDER=/usr/local/bin/krender \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/fleet
VOLUME ["/clusters", "/config", "/var/lib/fleet", "/var/cache/fleet"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["fleet"]
# Listening beyond loopback needs API tokens (lines `token, role[, name]`, roles read/admin):
# mount them at /config/tokens.txt. The webhooks and /healthz, /readyz stay open.
CMD ["run", "--config", "/config/fleet.yaml", "--clusters", "/clusters", "--state-dir", "/var/lib/fleet", "--listen", "0.0.0.0:8080", "--api-tokens", "/config/tokens.txt"]
