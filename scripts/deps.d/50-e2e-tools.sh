#!/usr/bin/env bash
# The end-to-end suite's control plane and the Pulumi engine, built from Go modules (the engine
# from the vendored sources in ../shared/vendor where the proxy refuses it) and cached
# (see docs/real-engine.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python3 "$root/tools/build_tools.py" kube-apiserver etcd kwok crds
python3 "$root/tools/build_tools.py" pulumi \
  || echo "the Pulumi engine cannot be built here (the Go module proxy refuses it and there is no ../shared/vendor): its tests will be skipped"
