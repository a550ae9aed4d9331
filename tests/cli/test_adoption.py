"""What stopped a new user (issue 26), items 4-7: an auto-renew lease refused before it is written
when no stack has telemetry; an unknown `--stack` is exit 2 with one line in every command; the
kubeconfig, network and TLS failures are said in the user's words (the file, the host, why),
never a library's (`Invalid kube-config file`, `MaxRetryError`, `InsecureRequestWarning`,
`HTTPSConnectionPool(...)`); a broken kubeconfig costs doctor one check, not its report; prune
works in a fleet whose leases/ and pools/ are gone."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_example
from tests.support.triton import free_port

TMS = str(ROOT / ".venv" / "bin" / "tms")
LIBRARY_WORDS = ("kube-config", "MaxRetryError", "InsecureRequestWarning", "HTTPSConnectionPool",
                 "NameResolutionError", "urllib3", "Traceback", "ConfigException")


def tms(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "TMS_PROMETHEUS_URL")}
    base |= {"HOME": str(cwd.parent), "NO_COLOR": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    out = subprocess.run([TMS, *args], cwd=cwd, capture_output=True, text=True, timeout=180,
                         env={**base, **(env or {})})
    for word in LIBRARY_WORDS:
        assert word not in out.stdout + out.stderr, (word, out.stdout, out.stderr)
    return out


def checks_of(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {f"{c['area']} {c['name']}": c for c in json.loads(out.stdout)["checks"]}


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    made = tms(tmp_path, "init", str(tmp_path / "fleet"))
    assert made.returncode == 0, made.stderr
    return tmp_path / "fleet"


def test_auto_renew_without_telemetry_is_refused_before_anything_is_written(fleet: Path) -> None:
    out = tms(fleet, "lease", "create", "scorer", "-m", "name=m,uri=https://models.example.com/m.zip",
              "--owner", "my-team", "--duration", "8h", "--auto-renew")
    assert out.returncode == 1, out.stdout + out.stderr
    assert len(out.stderr.splitlines()) == 1 and "[autorenew.telemetry]" in out.stderr
    assert "Pulumi.production.yaml sets no `tms-stack:telemetry`" in out.stderr
    assert not (fleet / "leases" / "scorer.yaml").exists()
    stack = fleet / "Pulumi.production.yaml"
    stack.write_text(stack.read_text().replace(
        "  # tms-stack:telemetry: {source: prometheus, prometheusUrl: http://prometheus.monitoring:9090}",
        "  tms-stack:telemetry: {source: prometheus, prometheusUrl: http://prometheus.monitoring:9090}"))
    out = tms(fleet, "lease", "create", "scorer", "-m", "name=m,uri=https://models.example.com/m.zip",
              "--owner", "my-team", "--duration", "8h", "--auto-renew")
    assert out.returncode == 0, out.stderr
    assert tms(fleet, "check").returncode == 0


@pytest.mark.parametrize("args", [
    ["render", "--stack", "unknown", "--out", "OUT"],
    ["plan", "--stack", "nonexistent", "--base", "HEAD"],
    ["plan", "--stack", "nonexistent", "--base", "HEAD", "--targets"],
    ["prune", "--stack", "nope", "--dry-run"],
    ["lease", "list", "--stack", "nope"],
    ["doctor", "--stack", "nope"],
])
def test_an_unknown_stack_is_a_usage_error_with_one_line(tmp_path: Path, args: list[str]) -> None:
    repo = copy_example(tmp_path / "fleet")
    subprocess.run("git init -q -b main && git add -A && git -c user.name=t -c user.email=t@e commit -qm x",
                   shell=True, cwd=repo, check=True)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    out = tms(repo, *args)
    stack = args[args.index("--stack") + 1]
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == "" and out.stderr == f"error: --stack {stack}: no Pulumi.{stack}.yaml (stacks here: example)\n"
    assert not (tmp_path / "out").exists()


def test_a_broken_kubeconfig_costs_one_check_not_the_report(fleet: Path) -> None:
    broken = fleet.parent / "kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    out = tms(fleet, "doctor", "-o", "json", env={"KUBECONFIG": str(broken)})
    assert out.returncode == 1
    checks = checks_of(out)
    assert checks["repository tms check"]["status"] == "ok" and checks["stack Pulumi.production.yaml"]["status"] == "ok"
    kube = checks["cluster kubeconfig"]
    assert kube["status"] == "fail" and kube["detail"].startswith(f"no usable kubeconfig: {broken}:")
    assert "not valid YAML" in kube["detail"]
    broken.write_text("")
    kube = checks_of(tms(fleet, "doctor", "-o", "json", "--kubeconfig", str(broken)))["cluster kubeconfig"]
    assert kube["detail"] == f"no usable kubeconfig: {broken}: no clusters, users or contexts in it (empty or not a kubeconfig)"
    # lease status reads the same kubeconfig: the same words, and the file view still shows.
    made = tms(fleet, "lease", "create", "scorer", "-m", "name=m,uri=https://models.example.com/m.zip", "--owner", "my-team")
    assert made.returncode == 0, made.stderr
    status = tms(fleet, "lease", "status", "scorer", env={"KUBECONFIG": str(broken)})
    assert "Lease scorer" in status.stdout
    assert f"no usable kubeconfig: {broken}: no clusters, users or contexts in it" in status.stdout + status.stderr
    missing = fleet.parent / "nowhere" / "config"
    status = tms(fleet, "lease", "status", "scorer", env={"KUBECONFIG": str(missing)})
    assert f"no usable kubeconfig: {missing}: no such file (pass --kubeconfig FILE, or set KUBECONFIG)" in \
        status.stdout + status.stderr


def kubeconfig(path: Path, server: str, insecure: bool = False) -> Path:
    cluster = {"server": server, **({"insecure-skip-tls-verify": True} if insecure else {})}
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                                "clusters": [{"name": "c", "cluster": cluster}],
                                "users": [{"name": "u", "user": {"token": "t"}}],
                                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_an_unreachable_cluster_says_why(fleet: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = kubeconfig(fleet.parent / "kubeconfig", server)
    reach = checks_of(tms(fleet, "doctor", "-o", "json", "--kubeconfig", str(config)))["cluster reachable"]
    assert reach["status"] == "fail" and reach["detail"] == f"cannot reach {server} (connection refused)"
    # Name resolution, as for a mistyped server.
    config = kubeconfig(fleet.parent / "kubeconfig", "https://cluster.no-such-host.invalid:6443")
    reach = checks_of(tms(fleet, "doctor", "-o", "json", "--kubeconfig", str(config)))["cluster reachable"]
    assert reach["detail"].endswith("(the host name does not resolve)"), reach


VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "0" * 40, "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate that answers /version and refuses the rest."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "server.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
            body = json.dumps(VERSION if self.path.startswith("/version") else
                              {"kind": "Status", "code": 403, "reason": "Forbidden"}).encode()
            self.send_response(200 if self.path.startswith("/version") else 403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_tls_verification_off_is_said_once_in_doctor_s_words(fleet: Path, tls_server: str) -> None:
    config = kubeconfig(fleet.parent / "kubeconfig", tls_server, insecure=True)
    out = tms(fleet, "doctor", "-o", "json", "--kubeconfig", str(config))
    assert out.stderr == "", out.stderr  # no urllib3 warning per request
    checks = checks_of(out)
    assert checks["cluster reachable"]["status"] == "ok", checks["cluster reachable"]
    assert checks["cluster tls"]["status"] == "warn" and "insecure-skip-tls-verify" in checks["cluster tls"]["detail"]
    # Verified TLS against a self-signed certificate: why, in words.
    config = kubeconfig(fleet.parent / "kubeconfig", tls_server)
    reach = checks_of(tms(fleet, "doctor", "-o", "json", "--kubeconfig", str(config)))["cluster reachable"]
    assert reach["status"] == "fail" and "TLS failed" in reach["detail"], reach


def test_pool_lock_names_the_lease_and_model_it_could_not_learn(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "fleet")
    # A host that does not resolve, as in issue 26 (a loopback URL is refused by model.uri-internal).
    url = "https://models.no-such-host.invalid/models/scorer.zip"
    made = tms(repo, "lease", "create", "scorer", "-m", f"name=scorer_model,uri={url}", "--owner", "team-nlp",
               "-p", "shared-t4-pool", "--quota", "1")
    assert made.returncode == 0, made.stderr
    out = tms(repo, "pool", "lock")
    assert out.returncode == 0, out.stderr
    (warning,) = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert "lease scorer model scorer_model" in warning and url in warning
    assert "cannot reach models.no-such-host.invalid (the host name does not resolve)" in warning
    assert "Declaring `backends:` on the model avoids this fetch" in warning


def test_prune_works_where_leases_and_pools_are_gone(tmp_path: Path) -> None:
    """git keeps no empty folder: the last lease expired and no .gitkeep kept leases/."""
    repo = copy_example(tmp_path / "fleet")
    for sub in ("leases", "pools"):
        for f in (repo / sub).iterdir():
            f.unlink()
        (repo / sub).rmdir()
    out = tms(repo, "prune", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["changed"] is False
    assert tms(repo, "check").returncode == 0
