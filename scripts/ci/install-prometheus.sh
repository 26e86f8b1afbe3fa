#!/usr/bin/env bash
# Installs what tests/test_prometheus.py runs, from Debian's packages: the Prometheus server
# (prometheus), which scrapes a real embedspace server and answers the dashboard's queries.
# Idempotent: does nothing when prometheus is on PATH. Needs root.
set -euo pipefail

command -v prometheus > /dev/null && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install-prometheus: needs root to install prometheus (apt-get install prometheus)" >&2
    exit 1
fi
# The test starts a Prometheus of its own on a loopback port; the package's service (on
# :9090, all interfaces) must not start. Where no policy-rc.d says so, one does for the
# install (exit 101: "action forbidden").
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
# Without the recommended exporters (node exporter and the like): only the server is used.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
