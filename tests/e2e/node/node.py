"""A real one-node cluster for the end-to-end tests: containerd + runc (Debian packages),
the bridge CNI plugin, and a kubelet built from the same k8s.io/kubernetes module as the
control plane (tools/build_node.py), registered with a control plane of its own (no kwok
nodes, so every pod is scheduled onto this node and really runs).

Found on this machine kind (see docs/real-engine.md, "The node"): the kubelet runs with the
cgroupfs driver and failSwapOn=false; the pod sandbox fails in runc ("can't get final child's
PID from pipe: EOF") unless containerd's CRI plugin sets ``restrict_oom_score_adj`` (the
sandbox asks for oom_score_adj -998 and lowering it is refused here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "images"))

import build_images  # noqa: E402
import build_node  # noqa: E402
import build_tools  # noqa: E402
import oci  # noqa: E402

GATEWAY = "10.244.0.1"  # the bridge's address: how pods reach servers the tests run on the host
CLIENT_IP, CLIENT_HOST_IP = "10.245.0.2", "10.245.0.1"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"  # containerd's default name; built here, never pulled
CNI_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


HELLO_IMAGE = "tms.local/hello:1"


def pause_image(root: Path | None = None) -> Path:
    """The sandbox image: a static Go ``pause`` in one layer, cached by its source's hash."""
    return go_image("pause", PAUSE_IMAGE, root)


def hello_image(root: Path | None = None) -> Path:
    """A static HTTP server on :8080 (tools/images/hello) for Service and probe tests."""
    return go_image("hello", HELLO_IMAGE, root)


def stack_images() -> dict[str, tuple[str, Path]]:
    """The Triton and agent images the stack's pods run: ``{"triton"|"agent": (ref, tar)}``."""
    return build_images.build_images()


def go_image(name: str, ref: str, root: Path | None = None) -> Path:
    """One static Go binary from tools/images/<name> as a one-layer image, cached by source hash."""
    import hashlib

    root = root or build_tools.cache_root()
    src = ROOT / "tools" / "images" / name
    h = hashlib.sha256()
    for p in sorted(src.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    h.update(build_tools.go_version().encode())
    out = root / "images" / f"{name}-{h.hexdigest()[:12]}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = build_tools.go_env(root)
    env["GOFLAGS"] = "-buildvcs=false"
    binary = out.with_suffix(".bin")
    subprocess.run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."],
                   cwd=src, env=env, check=True)
    oci.write_image(out, ref, [oci.layer_from({f"/{name}": binary})], entrypoint=[f"/{name}"])
    binary.unlink()
    return out


class Node:
    """containerd + kubelet on this machine, all state under one temporary directory."""

    def __init__(self, kubeconfig: Path, name: str = "tms-node", sync_frequency: str | None = None):
        self.kubeconfig = kubeconfig
        self.sync_frequency = sync_frequency
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix="tmsnode-", dir="/tmp"))  # short: socket paths
        self.sock = self.dir / "containerd.sock"
        self.bridge = f"tmsn{os.getpid() % 100000}"
        # a client outside the cluster: a network namespace joined to the host by a veth pair
        # (not on the bridge), so its requests to a ClusterIP are DNATed by kube-proxy's rules
        # on the way in and un-DNATed on the way back, as a client on another machine would be
        self.client_ns = f"tmsc{os.getpid() % 100000}"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.kube_proxy = ""
        self.images: dict[str, str] = {}  # "triton"/"agent" -> the imported image reference

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", str(self.sock), "-n", "k8s.io", *args],
                              capture_output=True, text=True, check=check)

    def _spawn(self, name: str, argv: list[str]) -> None:
        logf = (self.dir / f"{name}.log").open("w")
        self.procs.append((name, subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL)))

    def log_tail(self, name: str, n: int = 30) -> str:
        return "\n".join((self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-n:])

    def start(self, images: list[Path]) -> None:
        bins = build_node.build_node()
        cni_bin = next((d for d in CNI_DIRS if Path(d, "bridge").exists()), None)
        if cni_bin is None or not shutil.which("containerd") or not shutil.which("runc"):
            raise RuntimeError("containerd, runc or the CNI plugins are missing: run scripts/deps.d/60-node.sh")
        d = self.dir
        self._network()
        (d / "cni").mkdir()
        (d / "cni" / "10-tms.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "tms-e2e",
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "dataDir": str(d / "ipam"),
                          "ranges": [[{"subnet": "10.244.0.0/24", "gateway": GATEWAY}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ]}))
        (d / "containerd.toml").write_text(f"""version = 2
root = "{d / 'containerd-root'}"
state = "{d / 'containerd-state'}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  # pod network namespaces under our state directory, not the host's /var/run/netns
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d / 'cni'}"
""")
        self._spawn("containerd", ["containerd", "--config", str(d / "containerd.toml")])
        _wait(lambda: self.ctr("version", check=False).returncode == 0, 30, lambda: self.log_tail("containerd"))
        for tar in [pause_image(), hello_image(), *images]:
            self.ctr("images", "import", str(tar))
        (d / "kubelet.yaml").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs", "failSwapOn": False,
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "address": "127.0.0.1", "port": _free_port(), "readOnlyPort": 0, "healthzPort": _free_port(),
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "localStorageCapacityIsolation": False, "enforceNodeAllocatable": [],
            "makeIPTablesUtilChains": False,
            # this machine's image filesystem is not found by cadvisor; do not evict on it
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "serializeImagePulls": False,
            # containers' logs under our directory, not the host's /var/log/pods
            "podLogsDir": str(d / "pod-logs"),
            **({"syncFrequency": self.sync_frequency} if self.sync_frequency else {}),
        }))
        self._spawn("kubelet", [bins["kubelet"], "--config", str(d / "kubelet.yaml"),
                                "--root-dir", str(d / "kubelet"), "--kubeconfig", str(self.kubeconfig),
                                "--hostname-override", self.name, "--node-ip", "127.0.0.1", "--v=1"])


    def _network(self) -> None:
        """The pods' bridge with its gateway address made before the first pod (so servers on the
        host can listen on it), and the client namespace."""
        ns, hv = self.client_ns, f"{self.client_ns}h"
        for argv in (["ip", "link", "add", "name", self.bridge, "type", "bridge"],
                     ["ip", "addr", "add", f"{GATEWAY}/24", "dev", self.bridge],
                     ["ip", "link", "set", self.bridge, "up"],
                     ["ip", "netns", "add", ns],
                     ["ip", "link", "add", hv, "type", "veth", "peer", "name", "eth0", "netns", ns],
                     ["ip", "addr", "add", f"{CLIENT_HOST_IP}/30", "dev", hv],
                     ["ip", "link", "set", hv, "up"],
                     ["ip", "-n", ns, "addr", "add", f"{CLIENT_IP}/30", "dev", "eth0"],
                     ["ip", "-n", ns, "link", "set", "eth0", "up"],
                     ["ip", "-n", ns, "link", "set", "lo", "up"],
                     ["ip", "-n", ns, "route", "add", "default", "via", CLIENT_HOST_IP]):
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def client_http(self, method: str, url: str, body: object = None, timeout: float = 5) -> tuple[int, str]:
        """An HTTP request from the client namespace: (status, body); status 0 when it failed."""
        script = (
            "import json, sys, urllib.request, urllib.error\n"
            "method, url, body, timeout = json.loads(sys.argv[1])\n"
            "data = None if body is None else json.dumps(body).encode()\n"
            "req = urllib.request.Request(url, data=data, method=method,"
            " headers={'Content-Type': 'application/json'})\n"
            "try:\n"
            "    r = urllib.request.urlopen(req, timeout=timeout)\n"
            "    print(json.dumps([r.status, r.read().decode(errors='replace')]))\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(json.dumps([e.code, e.read().decode(errors='replace')]))\n"
            "except Exception as e:\n"
            "    print(json.dumps([0, repr(e)]))\n"
        )
        p = subprocess.run(["ip", "netns", "exec", self.client_ns, sys.executable, "-c", script,
                            json.dumps([method, url, body, timeout])],
                           capture_output=True, text=True, timeout=timeout + 10, env={"PATH": os.environ["PATH"]})
        if p.returncode != 0:
            return 0, p.stderr.strip()[-500:]
        status, text = json.loads(p.stdout)
        return int(status), str(text)

    def container_logs(self, namespace: str, n: int = 15) -> str:
        """The last lines of every container log of the namespace's pods (for failure messages)."""
        out = []
        for f in sorted((self.dir / "pod-logs").glob(f"{namespace}_*/*/*.log")):
            lines = f.read_text(errors="replace").splitlines()[-n:]
            out.append(f"--- {f.parent.parent.name.split('_')[1]}/{f.parent.name} ({f.name}):")
            out += [ln.split(" ", 3)[-1] for ln in lines]  # drop the CRI timestamp/stream/tag prefix
        return "\n".join(out)

    def start_proxy(self) -> None:
        """kube-proxy (iptables mode), once the node is registered: it takes the node's IP."""
        (self.dir / "kube-proxy.yaml").write_text(json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "mode": "iptables", "clusterCIDR": "10.244.0.0/24", "hostnameOverride": self.name,
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "bindAddress": "127.0.0.1", "healthzBindAddress": f"127.0.0.1:{_free_port()}",
            "metricsBindAddress": f"127.0.0.1:{_free_port()}",
            # leave the host's conntrack sysctls alone
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }))
        self._spawn("kube-proxy", [build_node.build_node()["kube_proxy"], "--config", str(self.dir / "kube-proxy.yaml"), "--v=1"])
        self.kube_proxy = build_node.build_node()["kube_proxy"]

    def stop(self) -> None:
        for name, p in reversed(self.procs):
            if name == "kubelet" and p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for t in tasks:
            self.ctr("tasks", "kill", "-s", "KILL", t, check=False)
        time.sleep(0.5)
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        # what the kubelet and containerd mounted (tmpfs volumes, overlay rootfs, netns)
        mounts = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines()
                  if ln.split()[1].startswith(str(self.dir))]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", f"{self.client_ns}h"], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.client_ns], check=False, capture_output=True)
        # the kubelet's KUBE-FIREWALL chain (it drops non-loopback sources to 127.0.0.0/8)
        for args in (["-D", "INPUT", "-j", "KUBE-FIREWALL"], ["-D", "OUTPUT", "-j", "KUBE-FIREWALL"],
                     ["-F", "KUBE-FIREWALL"], ["-X", "KUBE-FIREWALL"]):
            subprocess.run(["iptables", *args], check=False, capture_output=True)
        if self.kube_proxy:  # its KUBE-* chains in the host's iptables
            subprocess.run([self.kube_proxy, "--cleanup"], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(ok, timeout_s: float, tail) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.25)
    raise TimeoutError(f"not ready after {timeout_s:.0f}s:\n{tail()}")
