"""TMS Helm settings and repositories as TMS accepted them: TLS (cert-manager Certificate checked
against cert-manager's own CRD schema, Triton's gRPC TLS flags on a real tritonserver), log and
trace levels, `shareTriton.byDefault`, replicas minimum 0, HTTP archives recognised by content
(Python's http.server, as in TMS's quickstart), anonymous S3."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml

from tests.conftest import NOW, ROOT
from tms_stack.commands.render import render_root
from tms_stack.models.policies import RepositoriesSpec
from tms_stack.render import all_objects

K8S_VERSION = "1.33.0"


def _set_stack(repo: Path, extra: str) -> None:
    path = repo / "Pulumi.example.yaml"
    path.write_text(path.read_text() + extra)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


TLS_STACK = """  tms-stack:tls:
    issuerName: tms-ca
    privateKeyAlgorithm: ECDSA
    privateKeySize: 384
"""


@pytest.fixture(scope="module")
def certificate_schema() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tools import build_tools

    result = build_tools.build(["crds"])
    assert "error" not in result["crds"], result["crds"]
    path = next(f for f in result["crds"]["files"] if f.endswith("cert-manager.io_certificates.yaml"))
    crd = yaml.safe_load(Path(path).read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def _by(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_tls_renders_a_certificate_per_triton_valid_against_cert_managers_crd(
        example_repo: Path, certificate_schema: dict[str, Any]) -> None:
    _set_stack(example_repo, TLS_STACK)
    objs = all_objects(render_root(example_repo, "example", NOW))
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    certs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Certificate"}
    assert set(certs) == {d["metadata"]["name"] for d in deployments}  # one per lease / pool instance
    validator = jsonschema.Draft7Validator(certificate_schema)
    for cert in certs.values():
        validator.validate({k: v for k, v in cert.items() if k != "metadata"} | {"metadata": {}})
    cert = certs["fraud-detector"]["spec"]
    assert cert["issuerRef"] == {"name": "tms-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["privateKey"] == {"algorithm": "ECDSA", "size": 384, "rotationPolicy": "Always"}
    assert "fraud-detector.triton.svc.cluster.local" in cert["dnsNames"]
    # Issue 23 #7: no wildcard anywhere; each certificate names the Services reaching its Triton
    # only (a pool instance: its hosted leases and their aliases).
    assert not any("*" in n for c in certs.values() for n in c["spec"]["dnsNames"])
    pool = certs["shared-t4-pool-0"]["spec"]["dnsNames"]
    assert {"chat-small.triton.svc", "chat.triton.svc", "chat-embed.triton.svc"} <= set(pool)
    assert not any(n.startswith("fraud-detector") for n in pool)
    template = _by(objs, "Deployment", "shared-t4-pool-0")["spec"]["template"]["metadata"]
    assert len(template["annotations"]["tms-stack.dev/tls-names"]) == 16  # new names roll the pods
    # The schema check bites: a key algorithm cert-manager does not know is refused.
    broken = {k: v for k, v in certs["fraud-detector"].items() if k != "metadata"} | {"metadata": {}}
    broken["spec"] = dict(broken["spec"], privateKey={"algorithm": "DSA"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    dep = _by(objs, "Deployment", "fraud-detector")
    pod = dep["spec"]["template"]["spec"]
    triton = pod["containers"][0]
    assert {"--grpc-use-ssl=true", "--grpc-server-cert=/var/run/tms/tls/tls.crt",
            "--grpc-server-key=/var/run/tms/tls/tls.key"} <= set(triton["args"])
    assert {"name": "tls", "secret": {"secretName": "fraud-detector-tls"}} in pod["volumes"]
    kubernetes_validate.validate(dep, K8S_VERSION, strict=True)
    # Triton has no TLS for HTTP: its plaintext port is not exposed unless the admin allows it.
    ports = {p["name"] for p in _by(objs, "Service", "fraud-detector")["spec"]["ports"]}
    assert ports == {"grpc", "metrics"}


def test_tls_settings_refuse_a_key_size_the_algorithm_has_not(example_repo: Path) -> None:
    from tms_stack.models.diagnostics import TmsError
    from tms_stack.repo.stack import load_stack_settings

    _set_stack(example_repo, TLS_STACK.replace("384", "4096"))
    with pytest.raises(TmsError, match="not a ECDSA key size: use one of 256, 384, 521"):
        load_stack_settings(example_repo, "example")


def test_log_and_trace_levels_reach_triton(example_repo: Path) -> None:
    _edit(example_repo / "policies" / "limits.yaml", "    enableRestrictedAccess: true\n",
          "    enableRestrictedAccess: true\n    logLevel: verbose\n    traceLevel: timestamps\n")
    objs = all_objects(render_root(example_repo, "example", NOW))
    for dep in (o for o in objs if o["kind"] == "Deployment"):
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--log-verbose=1" in args and "--trace-config=level=TIMESTAMPS" in args, dep["metadata"]["name"]


def test_share_triton_by_default_never_moves_an_existing_lease(example_repo: Path) -> None:
    """Issue 25 #4: TMS applied `shareTriton.byDefault` to new leases only. It is applied by
    `tms lease create` (tests/parity/test_tmsctl_flags.py); a lease file without `triton` or `pool`
    stays bespoke when the admin turns it on, in the repository and in what is rendered."""
    _edit(example_repo / "policies" / "limits.yaml", "    maxInstances: 8\n",
          "    maxInstances: 8\n    byDefault: true\n    defaultPool: cpu_inference_pool\n")
    (example_repo / "leases" / "plain.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: plain, owner: team-assist}\nspec:\n"
        "  models:\n    - {name: m, uri: 'model://shared-nfs/m', backends: [python]}\n"
        "  expires: 2027-01-01T00:00:00Z\n")
    from tms_stack.repo.loader import load_repository

    repo = load_repository(example_repo)
    assert repo.lease("plain").spec.pool is None
    objs = all_objects(render_root(example_repo, "example", NOW))
    assert _by(objs, "Deployment", "plain")  # its own Triton, as its file says


def test_replicas_minimum_zero(example_repo: Path) -> None:
    limits = example_repo / "policies" / "limits.yaml"
    _edit(limits, "limits: {minimum: 1, maximumIdle: 2, maximum: 10}", "limits: {minimum: 0, maximumIdle: 2, maximum: 10}")
    _edit(example_repo / "leases" / "fraud-detector.yaml", "minReplicas: 1", "minReplicas: 0")
    hpa = _by(all_objects(render_root(example_repo, "example", NOW)), "HorizontalPodAutoscaler", "fraud-detector")
    # Without the stack's scaleToZero, Kubernetes would refuse 0: 1, and the object says why.
    assert hpa["spec"]["minReplicas"] == 1
    assert "scaleToZero" in hpa["metadata"]["annotations"]["tms-stack.dev/min-replicas"]
    _set_stack(example_repo, "  tms-stack:scaleToZero: {externalMetric: gateway_pending_requests}\n")
    hpa = _by(all_objects(render_root(example_repo, "example", NOW)), "HorizontalPodAutoscaler", "fraud-detector")
    assert hpa["spec"]["minReplicas"] == 0
    external = [m for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert external[0]["external"]["metric"]["selector"] == {"matchLabels": {"tms-stack.dev/lease": "fraud-detector"}}
    kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)


# ---- a real tritonserver with the rendered log and TLS flags -------------------------------

def _self_signed(dest: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = dest / "tls.crt", dest / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_triton_serves_grpc_over_tls_with_the_rendered_flags(tmp_path: Path) -> None:
    """The exact TLS and log flags we render, on tritonserver 2.51 (nvidia-pytriton): gRPC answers
    over TLS, refuses plaintext, and HTTP (no TLS in Triton) still serves the in-pod agent."""
    import tritonclient.grpc as grpcclient

    from tests.support.triton import _site_packages, backend_dir, free_port, triton_home
    from tms_stack.render.tritonopts import TLS_DIR, log_args, tls_args

    crt, key = _self_signed(tmp_path)
    args = [a.replace(f"{TLS_DIR}/tls.crt", str(crt)).replace(f"{TLS_DIR}/tls.key", str(key)) for a in tls_args()]
    args += [a.replace("/tmp/tms-trace", str(tmp_path / "trace")) for a in log_args("verbose", "timestamps")]
    (tmp_path / "models").mkdir()
    (tmp_path / "trace").mkdir()
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=str(_site_packages() / "nvidia_pytriton.libs"))
    log = (tmp_path / "triton.log").open("wb")
    proc = subprocess.Popen([str(triton_home() / "bin" / "tritonserver"), f"--model-repository={tmp_path / 'models'}",
                             f"--backend-directory={backend_dir(tmp_path)}", "--model-control-mode=explicit",
                             f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}",
                             "--exit-timeout-secs=2", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "triton.log").read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{http_port}/v2/health/live", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "tritonserver did not start"
            time.sleep(0.2)
        secure = grpcclient.InferenceServerClient(f"localhost:{grpc_port}", ssl=True, root_certificates=str(crt))
        assert secure.is_server_live()
        plain = grpcclient.InferenceServerClient(f"localhost:{grpc_port}")
        with pytest.raises(Exception):  # noqa: B017 - tritonclient wraps the gRPC error in its own
            plain.is_server_live(client_timeout=5)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    assert "Started GRPCInferenceService" in (tmp_path / "triton.log").read_text()


# ---- repositories as TMS accepted them -----------------------------------------------------

@pytest.fixture
def plain_http(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Python's http.server, as TMS's quickstart runs it: no range requests."""
    web = tmp_path / "web"
    web.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(web))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", web
    finally:
        server.shutdown()


def test_http_archive_without_zip_suffix_is_recognised_by_content(plain_http: tuple[str, Path]) -> None:
    from tms_stack.outside.backends import BackendError, https_config

    url, web = plain_http
    with zipfile.ZipFile(web / "densenet_onnx", "w") as zf:  # the quickstart's URL has no .zip
        zf.writestr("densenet_onnx/config.pbtxt", 'platform: "onnxruntime_onnx"\n')
        zf.writestr("densenet_onnx/1/model.onnx", b"\0" * 100)
    text, _ = https_config(f"{url}/densenet_onnx", RepositoriesSpec())
    assert "onnxruntime_onnx" in text
    (web / "page").write_text("<html>not a model</html>")
    with pytest.raises(BackendError, match="not a zip archive"):
        https_config(f"{url}/page", RepositoriesSpec())


def test_check_accepts_the_quickstart_model_url(example_repo: Path) -> None:
    from tms_stack.commands.check import run_check

    (example_repo / "leases" / "densenet.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Lease\nmetadata: {name: densenet, owner: team-assist}\nspec:\n"
        "  models:\n    - {name: densenet_onnx, uri: 'http://host.minikube.internal:8000/densenet_onnx', "
        "backends: [onnxruntime]}\n  expires: 2027-01-01T00:00:00Z\n"
        "  triton: {resources: {gpu: 0}}\n")
    result = run_check(example_repo, NOW)
    assert [d for d in result.all() if d.file == "leases/densenet.yaml" and d.severity == "error"] == []


def test_agent_fetches_an_http_zip_without_suffix(plain_http: tuple[str, Path], tmp_path: Path) -> None:
    from tms_stack.models.desired import HttpsSource
    from tms_stack.outside.sources import fetch

    url, web = plain_http
    with zipfile.ZipFile(web / "identity", "w") as zf:
        zf.writestr("config.pbtxt", 'backend: "python"\n')
        zf.writestr("1/model.py", "# model\n")
    dest = tmp_path / "out"
    dest.mkdir()
    fetch(HttpsSource(url=f"{url}/identity", trusted=True), dest, limit=1 << 20)  # loopback: named in policies
    assert (dest / "config.pbtxt").is_file() and (dest / "1" / "model.py").is_file()


def _no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_public_s3_bucket_read_without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A public bucket and no credentials anywhere: unsigned requests (TMS 0.9). versitygw
    v1.0.14 (our signature-checking S3 server) has no anonymous access, so the full read runs
    against moto's server, which applies ACLs to unsigned requests (403 until the bucket and
    object are public-read); see the next test for versitygw."""
    from moto.server import ThreadedMotoServer

    from tests.support.triton import free_port
    from tms_stack.models.desired import S3Source
    from tms_stack.outside.backends import BackendError, s3_config
    from tms_stack.outside.sources import fetch

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        owner = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="x", aws_secret_access_key="y")
        owner.create_bucket(Bucket="public-models")
        owner.put_object(Bucket="public-models", Key="m/config.pbtxt", Body=b'backend: "python"\n')
        _no_aws_env(monkeypatch, tmp_path)
        repos = RepositoriesSpec.model_validate(
            {"s3": [{"repositoryName": "public", "bucketName": "public-models", "endpoint": endpoint}]})
        with pytest.raises(BackendError, match="access denied"):  # private: unsigned is refused
            s3_config("public", "m", repos)
        owner.put_bucket_acl(Bucket="public-models", ACL="public-read")
        owner.put_object_acl(Bucket="public-models", Key="m/config.pbtxt", ACL="public-read")
        assert "python" in s3_config("public", "m", repos)
        dest = tmp_path / "m"
        dest.mkdir()
        fetch(S3Source(bucket="public-models", prefix="m", endpoint=endpoint), dest, limit=1 << 20)
        assert (dest / "config.pbtxt").read_text() == 'backend: "python"\n'
    finally:
        server.stop()


def test_no_credentials_reach_the_endpoint_unsigned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Before: NoCredentialsError, raised before the endpoint was contacted. Now the request is
    sent unsigned; versitygw v1.0.14 answers it (and refuses: it has no anonymous access)."""
    from tests.support.s3server import start_s3
    from tms_stack.outside.backends import BackendError, s3_config

    gen = start_s3()
    s3 = next(gen)
    try:
        s3.client().create_bucket(Bucket="models")
        _no_aws_env(monkeypatch, tmp_path)
        repos = RepositoriesSpec.model_validate(
            {"s3": [{"repositoryName": "public", "bucketName": "models", "endpoint": s3.endpoint}]})
        with pytest.raises(BackendError) as err:
            s3_config("public", "m", repos)
        assert "credentials" not in str(err.value).lower()
        assert "Authorization" in str(err.value) or "InvalidArgument" in str(err.value) or "denied" in str(err.value)
    finally:
        gen.close()
