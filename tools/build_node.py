"""The one-node cluster's Go pieces: kubelet and kube-proxy.

Built from the same ``k8s.io/kubernetes`` module and the same wrapper module
(tools/gobuild/kubernetes, whose tools.go pins them so go.sum covers their graph) as
kube-apiserver, with the same version ldflags; cached under the user cache dir beside the
other Go builds (piece name ``kube-node``). The container runtime (containerd, runc, the CNI
plugins, iptables) comes from Debian packages: scripts/deps.d/60-node.sh.

    python3 tools/build_node.py            # build or reuse, print the directory
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_tools  # noqa: E402  (a sibling script, not a package)

NODE_BINARIES = {
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
}


def node_piece() -> build_tools.GoPiece:
    base = build_tools.kubernetes_piece()
    return dataclasses.replace(base, name="kube-node", binaries=dict(NODE_BINARIES))


def build_node(root: Path | None = None) -> dict[str, str]:
    root = root or build_tools.cache_root()
    d = build_tools.build_go_piece(root, node_piece())
    return {"path": str(d / "kubelet"), "kubelet": str(d / "kubelet"), "kube_proxy": str(d / "kube-proxy")}


def main() -> int:
    start = time.monotonic()
    try:
        out = build_node()
    except build_tools.BuildError as e:
        build_tools.log(f"FAILED kube-node: {e}")
        return 1
    build_tools.log(f"kube-node: {build_tools._fmt_s(time.monotonic() - start)}")
    print(Path(out["kubelet"]).parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
