#!/usr/bin/env bash
# Debian's prometheus package: promtool for rule tests, the server for prune's telemetry tests.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  echo "prometheus: $(prometheus --version 2>&1 | head -1)"; exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing Debian package prometheus (apt-get)..."
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
# The package starts a system service where systemd runs; tests start their own servers.
(command -v systemctl >/dev/null && $SUDO systemctl stop prometheus 2>/dev/null) || true
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
