"""Where the agent's API access comes from (agent/watch.py): all parts present, or the file only."""

from __future__ import annotations

from pathlib import Path

from tms_stack.agent.watch import access_from_env


def _dir(tmp_path: Path, namespace: str = "triton", ca: bool = True) -> Path:
    d = tmp_path / "kube-api"
    d.mkdir(parents=True)
    (d / "token").write_text("t\n")
    (d / "namespace").write_text(namespace)
    if ca:
        (d / "ca.crt").write_text("pem")
    return d


def test_complete_access(tmp_path: Path) -> None:
    d = _dir(tmp_path)
    acc = access_from_env("pool-0", d, {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert acc is not None
    assert (acc.server, acc.namespace, acc.name, acc.ca_file) == ("https://10.96.0.1:443", "triton", "pool-0",
                                                                   d / "ca.crt")
    v6 = access_from_env("pool-0", d, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert v6 is not None and v6.server == "https://[fd00::1]:443"


def test_anything_missing_or_odd_means_the_file_only(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    d = _dir(tmp_path)
    assert access_from_env(None, d, env) is None                      # no ConfigMap named
    assert access_from_env("pool-0", None, env) is None               # no token directory
    assert access_from_env("pool-0", d, {}) is None                   # not in a pod
    assert access_from_env("Pool_0", d, env) is None                  # not an object name
    assert access_from_env("pool-0", tmp_path / "nowhere", env) is None
    odd = _dir(tmp_path / "odd", namespace="../secrets")
    assert access_from_env("pool-0", odd, env) is None
