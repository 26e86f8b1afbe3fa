#!/usr/bin/env bash
# Installs what the container test needs, from Debian's packages: the Docker engine (docker.io:
# dockerd, containerd, runc, and a docker client whose builds use BuildKit) and debootstrap,
# which makes the local stand-in for the debian:bookworm-slim base image (no image registry
# can be reached here). Idempotent: does nothing when both are there. Needs root.
set -euo pipefail

missing=()
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || missing+=(docker.io)
[[ -x /usr/sbin/debootstrap ]] || missing+=(debootstrap)
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install-engine: needs root to install ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
fi
apt-get update -q
# The daemon is started by the test itself, never as a service (policy-rc.d may deny that).
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
