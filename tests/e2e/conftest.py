"""End-to-end fixtures: a real Kubernetes control plane and the real Pulumi engine.

One control plane per test session (per xdist worker): etcd, kube-apiserver,
kube-controller-manager (the controllers that turn Deployments into pods and endpoints, the claim
binder, namespaces, and the garbage collector that completes Pulumi's foreground deletions),
kube-scheduler and kwok, which keeps three fake nodes Ready and turns the pods bound to them
Running/Ready, so Pulumi's awaits behave as on a cluster (no skipAwait anywhere). All on loopback
ports, with a generated CA, serving certificate, service-account signing key and a static admin
token. The PodMonitor and PrometheusRule CRDs of prometheus-operator are installed.

The binaries come from ``tools/build_tools.py`` (built from Go modules and cached on the first
run; see docs/real-engine.md). Build progress is shown even under output capture.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml as _pyyaml  # PyYAML (a dependency of pulumi): multi-document CRD files

from tests.e2e.kubeapi import Kube

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_tools  # noqa: E402

ADMIN_TOKEN = "tms-e2e-admin-token"


# ---------------------------------------------------------------------------------------------
# tools

@contextlib.contextmanager
def _uncaptured(request: pytest.FixtureRequest) -> Iterator[None]:
    """Let build progress reach the terminal even though pytest captures output."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


def _proxy_refused(error: str) -> bool:
    return "403 Forbidden" in error or "not available" in error


@pytest.fixture(scope="session")
def cluster_tools(request: pytest.FixtureRequest) -> dict[str, dict]:
    """kube-apiserver, -controller-manager, -scheduler, etcd, kwok and the CRDs: built once, then cached."""
    with _uncaptured(request):
        result = build_tools.build(["kube-apiserver", "etcd", "kwok", "crds"])
    errors = {k: v["error"] for k, v in result.items() if "error" in v}
    if errors:
        pytest.fail("could not build the e2e control plane:\n" + "\n".join(f"{k}: {v}" for k, v in errors.items()))
    return result


@pytest.fixture(scope="session")
def pulumi_tools(request: pytest.FixtureRequest) -> list[str]:
    """Directories holding pulumi, pulumi-language-python and pulumi-resource-kubernetes.

    From the Go module proxy, else from the vendored sources in ../shared/vendor
    (tools/build_pulumi.py), else ``TMS_PULUMI_BIN_DIR``. Only where the proxy refuses the Pulumi
    modules ("403 Forbidden ... This module version is not available") AND no vendored sources
    exist (a fork without ../shared) are the engine tests skipped, with that error; any other
    build failure (a vendored build that breaks included) fails them.
    """
    with _uncaptured(request):
        result = build_tools.build(["pulumi"])["pulumi"]
    if "error" in result:
        if _proxy_refused(result["error"]) and "no vendored Pulumi sources" in result["error"]:
            pytest.skip("the Pulumi engine cannot be built here (no ../shared/vendor and the Go module "
                        "proxy refuses it; set TMS_PULUMI_BIN_DIR): " + result["error"])
        pytest.fail("could not build the Pulumi engine: " + result["error"])
    return result["bin_dirs"]


# ---------------------------------------------------------------------------------------------
# certificates (cryptography is a dependency of the test extras, through moto)

def _write_pki(d: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def pem_key(key) -> bytes:  # type: ignore[no-untyped-def]
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tms-e2e-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    # what a pod connects to (KUBERNETES_SERVICE_HOST: the `kubernetes` Service's
                    # ClusterIP, the first of --service-cluster-ip-range) and, on the node of
                    # tests/e2e/node, the bridge's gateway the API server is advertised on
                    x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.244.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.crt").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(pem_key(srv_key))
    (d / "sa.key").write_bytes(pem_key(sa_key))
    (d / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (d / "tokens.csv").write_text(f'{ADMIN_TOKEN},tms-e2e-admin,tms-e2e-admin,"system:masters"\n')


# ---------------------------------------------------------------------------------------------
# the control plane

def _healthz(url: str) -> bool:
    """A component's own self-signed serving certificate: not verified (loopback only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return requests.get(url, verify=False, timeout=2).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, in ``workdir``."""

    def __init__(self, workdir: Path, tools: dict[str, dict], advertise: str | None = None):
        self.workdir = workdir
        self.tools = tools
        # With a real node (tests/e2e/node), pods reach the API server through the `kubernetes`
        # Service: it is advertised on the node bridge's gateway and listens on every address
        # (the bridge does not exist yet when it starts). Otherwise loopback only.
        self.advertise = advertise
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.kubeconfig = workdir / "kubeconfig"
        self.server = ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logf = (self.workdir / f"{name}.log").open("w")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    def _log_tail(self, name: str, n: int = 30) -> str:
        lines = (self.workdir / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def _wait(self, name: str, ok, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        proc = dict(self.procs)[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self._log_tail(name)}")
            try:
                if ok():
                    return
            except (requests.RequestException, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{name} not ready after {timeout_s}s:\n{self._log_tail(name)}")

    def start(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir()
        _write_pki(pki)
        etcd_client, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._spawn(
            "etcd",
            [
                self.tools["etcd"]["path"],
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",  # a throwaway store: speed over durability
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: requests.get(f"{etcd_url}/health", timeout=2).json()["health"] == "true", 60)

        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                self.tools["kube-apiserver"]["path"],
                f"--etcd-servers={etcd_url}",
                f"--bind-address={'0.0.0.0' if self.advertise else '127.0.0.1'}",
                f"--advertise-address={self.advertise or '127.0.0.1'}",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                f"--cert-dir={self.workdir / 'certs'}",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                # new nodes would get the not-ready taint, which only the node-lifecycle
                # controller lifts; kwok's nodes are Ready at once, so they are not tainted
                "--disable-admission-plugins=TaintNodesByCondition",
            ],
        )
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ca = str(pki / "ca.crt")
        self._wait(
            "kube-apiserver",
            lambda: requests.get(f"{self.server}/readyz", headers=headers, verify=ca, timeout=5).status_code == 200,
            180,
        )
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "e2e", "cluster": {"server": self.server, "certificate-authority": ca}}],
                    "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                    "current-context": "e2e",
                },
                indent=2,
            )
        )
        self._start_controllers()

    def _start_controllers(self) -> None:
        k8s = self.tools["kube-apiserver"]
        kcfg = str(self.kubeconfig)
        auth = [f"--kubeconfig={kcfg}", f"--authentication-kubeconfig={kcfg}", f"--authorization-kubeconfig={kcfg}"]
        cm_port, sched_port, kwok_port = _free_port(), _free_port(), _free_port()
        self._spawn(
            "kube-controller-manager",
            [
                k8s["controller_manager"],
                *auth,
                # Deployments -> ReplicaSets -> pods -> endpoints, the default ServiceAccount of
                # each namespace,
                # namespace, the claim binder (volume repositories are PVCs) and the garbage
                # collector (Pulumi deletes with foreground propagation, which only it completes)
                # and the publisher of the cluster CA (ConfigMap kube-root-ca.crt, which the model
                # agent's projected API token volume holds),
                "--controllers=deployment,replicaset,endpoint,endpointslice,serviceaccount,namespace,"
                "persistentvolume-binder,garbagecollector,root-ca-cert-publisher",
                f"--root-ca-file={self.workdir / 'pki' / 'ca.crt'}",
                "--pvclaimbinder-sync-period=2s",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--cert-dir={self.workdir / 'cm-certs'}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                k8s["scheduler"],
                *auth,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={self.workdir / 'sched-certs'}",
            ],
        )
        # kwok plays the kubelet of fake nodes: pods bound to them turn Running and Ready (they
        # are API objects only; nothing is pulled or executed)
        self._spawn(
            "kwok",
            [
                self.tools["kwok"]["path"],
                f"--kubeconfig={kcfg}",
                f"--config={self.tools['kwok']['stages']}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-ip=127.0.0.1",
            ],
        )
        for name, port in (("kube-controller-manager", cm_port), ("kube-scheduler", sched_port)):
            self._wait(
                name,
                lambda port=port: _healthz(f"https://127.0.0.1:{port}/healthz"),
                120,
            )

    def add_fake_nodes(self, kube: Kube, count: int = 3, capacity: dict[str, str] | None = None) -> None:
        """Nodes that kwok keeps Ready, big enough for every example lease (GPUs included)."""
        # roomy on purpose: every e2e test of the session schedules onto these three nodes, and a
        # namespace deleted after its test frees its pods only once the controllers catch up
        capacity = capacity or {"cpu": "1000", "memory": "8Ti", "pods": "1000", "nvidia.com/gpu": "64",
                                "ephemeral-storage": "16Ti"}
        for i in range(count):
            name = f"kwok-node-{i}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "nvidia.com/gpu.present": "true",
                    },
                },
                "spec": {},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            if kube.get("v1", "Node", name) is None:
                kube.request("POST", "/api/v1/nodes", json=node)
        deadline = time.monotonic() + 60
        while True:
            ready = [
                n for n in kube.list("v1", "Node", selector="type=kwok")
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
            ]
            if len(ready) >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"kwok nodes not Ready after 60s:\n{self._log_tail('kwok')}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM all, then SIGKILL what is still running after 5 s (the store is throwaway)."""
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for _name, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="session")
def control_plane(cluster_tools: dict[str, dict], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), cluster_tools)
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane, cluster_tools: dict[str, dict]) -> Kube:
    client = Kube(control_plane.server, ADMIN_TOKEN, str(control_plane.workdir / "pki" / "ca.crt"))
    crds = []
    for f in cluster_tools["crds"]["files"]:
        crds += [d for d in _pyyaml.safe_load_all(Path(f).read_text()) if d]
    client.install_crds(crds)
    control_plane.add_fake_nodes(client)
    return client


_ns_counter = 0


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test (names are unique within the session)."""
    global _ns_counter
    _ns_counter += 1
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"e2e-{_ns_counter}-{base}".strip("-")[:63].rstrip("-")
    kube.ensure_namespace(name)
    yield name
    # free the fake nodes for the tests that follow (pods, PVCs, HPAs go with the namespace)
    kube.delete("v1", "Namespace", name)


# ---------------------------------------------------------------------------------------------
# the Pulumi engine

class Pulumi:
    """Runs the real ``pulumi`` CLI in a project directory, with a local file backend."""

    def __init__(self, project: Path, env: dict[str, str]):
        self.project = project
        self.env = env

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["pulumi", *args, "--non-interactive"],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise AssertionError(
                f"`pulumi {' '.join(args)}` exited {p.returncode}\n--- stdout\n{p.stdout[-6000:]}\n--- stderr\n{p.stderr[-6000:]}"
            )
        return p

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return self.run("up", "--yes", "--skip-preview", "--diff", *extra)

    def preview(self, *extra: str) -> subprocess.CompletedProcess:
        return self.run("preview", "--diff", *extra)

    def preview_json(self, *extra: str) -> dict:
        p = self.run("preview", "--json", *extra)
        return json.loads(p.stdout)

    def up_json(self, *extra: str) -> dict:
        """`pulumi up` whose summary (``resourceChanges``) is returned, from the stack history."""
        self.run("up", "--yes", "--skip-preview", *extra)
        hist = json.loads(self.run("stack", "history", "--json", "--show-secrets").stdout)
        return hist[0]


@pytest.fixture(scope="session")
def pulumi_env(
    pulumi_tools: list[str], control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for the CLI: our binaries first on PATH, a private PULUMI_HOME, a file backend,
    and automatic plugin downloads switched off (a download attempt fails the test)."""
    return pulumi_environment(pulumi_tools, control_plane.kubeconfig, tmp_path_factory.mktemp("pulumi-home"),
                              tmp_path_factory.mktemp("pulumi-state"))


def pulumi_environment(bin_dirs: list[str], kubeconfig: Path, home: Path, state: Path) -> dict[str, str]:
    """The CLI's environment against the cluster of ``kubeconfig`` (also the real-node tests')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
    env.update(
        PATH=os.pathsep.join([*bin_dirs, str(ROOT / ".venv" / "bin"), env.get("PATH", "")]),
        PULUMI_HOME=str(home),
        PULUMI_BACKEND_URL=f"file://{state}",
        PULUMI_CONFIG_PASSPHRASE="tms-e2e",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="true",
        KUBECONFIG=str(kubeconfig),
    )
    return env


def write_pulumi_project(project: Path, name: str, main_py: str) -> Path:
    """A throwaway Pulumi Python project using the repository's virtualenv."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text(
        f"name: {name}\n"
        "runtime:\n"
        "  name: python\n"
        "  options:\n"
        f"    virtualenv: {ROOT / '.venv'}\n"
    )
    (project / "__main__.py").write_text(main_py)
    return project


@pytest.fixture
def pulumi_factory(pulumi_env: dict[str, str]):  # type: ignore[no-untyped-def]
    def make(project: Path, stack: str) -> Pulumi:
        # a backend per project: tests may reuse a stack name (the example's is fixed by its
        # Pulumi.<stack>.yaml) without seeing each other's state
        state = project.parent / f"{project.name}-pulumi-state"
        state.mkdir(exist_ok=True)
        p = Pulumi(project, {**pulumi_env, "PULUMI_BACKEND_URL": f"file://{state}"})
        p.run("stack", "init", stack)
        return p

    return make
