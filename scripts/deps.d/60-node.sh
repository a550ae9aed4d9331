#!/usr/bin/env bash
# The one-node cluster's runtime from Debian packages (see docs/real-engine.md, "The node"):
# containerd and runc run the pods, the CNI plugins give them a bridge network, iptables
# serves kube-proxy; mmdebstrap builds the images' Debian root filesystem.
# kubelet and kube-proxy themselves are Go builds: tools/build_node.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pkgs=(containerd runc containernetworking-plugins iptables mmdebstrap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "node: installing Debian packages ${missing[*]} (apt-get)..."
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The package starts containerd as a system service where systemd runs; the tests start
  # their own containerd with their own state directories.
  (command -v systemctl >/dev/null && $SUDO systemctl stop containerd 2>/dev/null) || true
fi
echo "node: containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | head -1 | awk '{print $3}')"
python3 "$root/tools/build_node.py"
# The Triton and agent images the node's pods run (cached layers; the first build takes minutes).
# A failure here does not stop the rest of the suite: the node tests build them again and fail
# with the same message (tools/build_images.py needs root, mmdebstrap and a Debian host's apt sources).
if [ -x "$root/.venv/bin/python" ]; then
  "$root/.venv/bin/python" "$root/tools/build_images.py" >/dev/null \
    || echo "node: WARNING: the node images did not build (see above); tests/e2e/node will fail" >&2
fi
