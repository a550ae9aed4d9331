"""Learning Triton backends from real config.pbtxt files: from a real S3 server (versitygw),
from HTTPS zips read with range requests, and through `tms pool lock` into the lock's cache."""

from __future__ import annotations

import json
import os
import random
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401 (fixture)
from tests.support.zipserver import TOKEN, serve_dir
from tms_stack.models.policies import HttpsRepository, RepositoriesSpec, S3Repository
from tms_stack.outside.backends import BackendError, learn_backends, learn_one, parse_backends

TMS = str(ROOT / ".venv" / "bin" / "tms")


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> Iterator[S3Server]:  # noqa: F811
    server = s3_server
    client = server.client()
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="team/nested/deep/ranker/config.pbtxt",
                      Body=b'name: "ranker"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n')
    client.put_object(Bucket="models", Key="chat/small/config.pbtxt", Body=b'name: "chat"\nbackend: "python"\n')
    yield server


def repos(s3: S3Server | None = None, https: str | None = None) -> RepositoriesSpec:
    return RepositoriesSpec(
        s3=[S3Repository(repositoryName="s3-models", bucketName="models", endpoint=s3.endpoint,
                         accessKey="k", secretKey="s")] if s3 else [],
        https=[HttpsRepository(targetUri=https, secretName="pull-token")] if https else [])


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMS_S3_S3_MODELS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("TMS_S3_S3_MODELS_SECRET_ACCESS_KEY", SECRET_KEY)


def test_parse_backends() -> None:
    assert parse_backends('backend: "python"') == ["python"]
    assert parse_backends('platform: "tensorrt_plan"') == ["tensorrt"]
    assert parse_backends('platform: "ensemble"') == []
    assert parse_backends("name: 'x'\n# backend: \"commented\"\n  backend: 'onnxruntime'\n") == ["onnxruntime"]
    with pytest.raises(BackendError, match="neither backend nor platform"):
        parse_backends("name: x")


def test_s3_nested_paths(s3: S3Server, s3_env: None) -> None:
    learned, errors = learn_backends(["model://s3-models/team/nested/deep/ranker", "model://s3-models/chat/small"],
                                     repos(s3))
    assert errors == {}
    assert learned == {"model://s3-models/team/nested/deep/ranker": ["onnxruntime"],
                       "model://s3-models/chat/small": ["python"]}


def test_s3_bad_credentials_and_missing_objects(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMS_S3_S3_MODELS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("TMS_S3_S3_MODELS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(BackendError, match=r"access denied \(SignatureDoesNotMatch\).*TMS_S3_S3_MODELS_ACCESS_KEY_ID"):
        learn_one("model://s3-models/chat/small", repos(s3))
    monkeypatch.setenv("TMS_S3_S3_MODELS_SECRET_ACCESS_KEY", SECRET_KEY)
    with pytest.raises(BackendError, match=r"s3://models/chat/missing/config.pbtxt: no such object"):
        learn_one("model://s3-models/chat/missing", repos(s3))


def test_s3_named_profile_and_missing_bucket(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[ci-models]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("TMS_S3_S3_MODELS_PROFILE", "ci-models")
    assert learn_one("model://s3-models/chat/small", repos(s3)) == ["python"]
    monkeypatch.setenv("TMS_S3_S3_MODELS_PROFILE", "no-such-profile")
    with pytest.raises(BackendError, match="no-such-profile.*TMS_S3_S3_MODELS_PROFILE"):
        learn_one("model://s3-models/chat/small", repos(s3))
    monkeypatch.setenv("TMS_S3_S3_MODELS_PROFILE", "ci-models")
    other = RepositoriesSpec(s3=[S3Repository(repositoryName="s3-models", bucketName="no-bucket-here",
                                              endpoint=s3.endpoint)])
    with pytest.raises(BackendError, match="no such bucket 'no-bucket-here'"):
        learn_one("model://s3-models/chat/small", other)


def test_volume_mounted_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "team" / "ranker").mkdir(parents=True)
    (tmp_path / "team" / "ranker" / "config.pbtxt").write_text('platform: "tensorrt_plan"\n')
    spec = RepositoriesSpec.model_validate({"volumes": [{"repositoryName": "shared-vol", "volumeClaimName": "models"}]})
    with pytest.raises(BackendError, match="TMS_VOLUME_SHARED_VOL"):
        learn_one("model://shared-vol/team/ranker", spec)
    monkeypatch.setenv("TMS_VOLUME_SHARED_VOL", str(tmp_path))
    assert learn_one("model://shared-vol/team/ranker", spec) == ["tensorrt"]
    with pytest.raises(BackendError, match="no such file"):
        learn_one("model://shared-vol/team/missing", spec)


def test_https_zip_reads_only_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    web = tmp_path / "web" / "private"
    web.mkdir(parents=True)
    big = web / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("big/config.pbtxt", 'name: "big"\nbackend: "pytorch"\n')
        zf.writestr("big/1/model.pt", random.Random(0).randbytes(8 * 2**20))  # 8 MiB of weights
    server, url = serve_dir(tmp_path / "web", tls=True)  # credentials only over TLS
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    try:
        plain = url.replace("https://", "http://")
        with pytest.raises(BackendError, match="refusing to send the secret 'pull-token' over plain HTTP"):
            learn_one(f"{plain}/private/big.zip", repos(https="127.0.0.1/private"))
        with pytest.raises(BackendError, match="TMS_HTTPS_PULL_TOKEN"):
            learn_one(f"{url}/private/big.zip", repos(https="127.0.0.1/private"))
        monkeypatch.setenv("TMS_HTTPS_PULL_TOKEN", "Bearer wrong")
        with pytest.raises(BackendError, match="HTTP 401"):
            learn_one(f"{url}/private/big.zip", repos(https="127.0.0.1/private"))
        monkeypatch.setenv("TMS_HTTPS_PULL_TOKEN", TOKEN)
        server.bytes_sent = 0
        assert learn_one(f"{url}/private/big.zip", repos(https="127.0.0.1/private")) == ["pytorch"]
        assert server.bytes_sent < 64 * 1024, f"read {server.bytes_sent} bytes of an 8 MiB zip"
    finally:
        server.shutdown()


def test_pool_lock_learns_and_caches(example_repo: Path, s3: S3Server) -> None:
    repos_file = example_repo / "policies" / "repositories.yaml"
    repos_file.write_text(repos_file.read_text().replace("http://minio.storage.svc:9000", s3.endpoint))
    lease = example_repo / "leases" / "chat-small.yaml"
    lease.write_text(lease.read_text().replace("      backends: [python]\n", ""))
    env = {**os.environ, "TMS_S3_S3_MODELS_ACCESS_KEY_ID": ACCESS_KEY,
           "TMS_S3_S3_MODELS_SECRET_ACCESS_KEY": SECRET_KEY}
    stale = subprocess.run([TMS, "check", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo, capture_output=True,
                           text=True)
    assert stale.returncode == 1 and "[lock.stale]" in stale.stdout
    out = subprocess.run([TMS, "pool", "lock"], cwd=example_repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "[1/1] model://s3-models/chat/small: python" in out.stderr
    lock = (example_repo / "pools" / "placement.lock.yaml").read_text()
    assert "model://s3-models/chat/small: [python]" in lock
    # Later runs need no network: check passes with the cached backend and no credentials.
    ok = subprocess.run([TMS, "check", "--now", "2026-11-22T00:00:00Z"], cwd=example_repo, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stdout


def test_unreadable_config_means_unknown_backend_and_an_instance_of_its_own(example_repo: Path, s3: S3Server) -> None:
    repos_file = example_repo / "policies" / "repositories.yaml"
    repos_file.write_text(repos_file.read_text().replace("http://minio.storage.svc:9000", s3.endpoint))
    lease = example_repo / "leases" / "chat-small.yaml"
    lease.write_text(lease.read_text().replace("      backends: [python]\n", ""))
    env = {**os.environ, "TMS_S3_S3_MODELS_ACCESS_KEY_ID": ACCESS_KEY,
           "TMS_S3_S3_MODELS_SECRET_ACCESS_KEY": "wrong"}
    out = subprocess.run([TMS, "pool", "lock"], cwd=example_repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert ("warning: could not learn the backends of lease chat-small model chat_small (model://s3-models/chat/small): "
            "s3://models/chat/small/config.pbtxt: access denied (SignatureDoesNotMatch)") in out.stderr
    assert "an instance of its own" in out.stderr
    status = subprocess.run([TMS, "pool", "status", "shared-t4-pool", "-o", "json"], cwd=example_repo, capture_output=True,
                            text=True)
    placed = {i["instance"]: i["leases"] for i in json.loads(status.stdout)["instances"]}
    assert placed == {"shared-t4-pool-0": ["chat-embed"], "shared-t4-pool-1": ["chat-small"]}
    # Learned later: cached, and chat-small stays where it is (alone, so nothing has to move).
    env["TMS_S3_S3_MODELS_SECRET_ACCESS_KEY"] = SECRET_KEY
    out = subprocess.run([TMS, "pool", "lock"], cwd=example_repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "moved" not in out.stdout, out.stdout + out.stderr
    status = subprocess.run([TMS, "pool", "status", "shared-t4-pool", "-o", "json"], cwd=example_repo, capture_output=True,
                            text=True)
    assert {i["instance"]: i["leases"] for i in json.loads(status.stdout)["instances"]} == placed
