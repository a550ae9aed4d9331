"""What the rendered Triton pods promise (issue 11 #1, #3, #4, #6, #7): the pod template depends
only on what changes the pod, volume repositories reach Triton, each pod makes its own key, a
NetworkPolicy per Triton Deployment, and the agent is told the load timeout and readiness mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import NOW, copy_example
from tms_stack.commands.render import render_root
from tms_stack.render import all_objects
from tms_stack.render.yamlout import dump_object

PRIVATE_LEASE = """apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: chat-private
  owner: team-assist
spec:
  models:
    - name: chat_private
      uri: https://models.example.com/private/chat.zip
      backends: [python]
  expires: 2027-02-01T00:00:00Z
  pool: {name: shared-t4-pool, quota: 1}
"""


def _objects(repo: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in all_objects(render_root(repo, "example", NOW))}


def _pod(objs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    return objs[("Deployment", name)]["spec"]["template"]  # type: ignore[no-any-return]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)  # type: ignore[no-any-return]


def _add_private_lease(repo: Path) -> None:
    """A pooled lease whose model needs a Secret (model-pull-token) no lease of the instance needed,
    in the lock exactly as `tms pool lock --base` derives it (appended: the review compares)."""
    (repo / "leases" / "chat-private.yaml").write_text(PRIVATE_LEASE)
    lock = repo / "pools" / "placement.lock.yaml"
    lock.write_text(lock.read_text()
                    .replace("leases: [chat-embed, chat-small]", "leases: [chat-embed, chat-small, chat-private]")
                    .replace("quotas: {chat-embed: 5, chat-small: 2}",
                             "quotas: {chat-embed: 5, chat-private: 1, chat-small: 2}"))


def test_adding_a_pooled_lease_that_needs_a_new_secret_changes_only_the_configmap(tmp_path: Path) -> None:
    before = _objects(copy_example(tmp_path / "a"))
    repo = copy_example(tmp_path / "b")
    _add_private_lease(repo)
    after = _objects(repo)
    # The lease is really on the instance and really needs the Secret.
    desired = json.loads(after[("ConfigMap", "shared-t4-pool-0")]["data"]["desired.json"])
    private = next(lease for lease in desired["leases"] if lease["name"] == "chat-private")
    assert private["models"][0]["source"]["authorizationSecret"] == "/var/run/tms/secrets/model-pull-token"
    changed = {key for key in set(before) | set(after) if before.get(key) != after.get(key)}
    assert changed == {("ConfigMap", "shared-t4-pool-0"), ("Service", "chat-private")}, changed
    # ... because the instance already mounted every Secret of the policies, optionally.
    volumes = {v["name"]: v for v in _pod(before, "shared-t4-pool-0")["spec"]["volumes"]}
    assert volumes["secret-model-pull-token"]["secret"] == {"secretName": "model-pull-token", "optional": True}
    assert {"secret-s3-access-key", "secret-s3-secret-key", "repo-shared-nfs"} <= set(volumes)


def test_a_pool_instance_template_holds_nothing_of_its_leases(tmp_path: Path) -> None:
    """Emptying the instance (no leases at all) leaves its pod template byte-identical."""
    full = copy_example(tmp_path / "full")
    empty = copy_example(tmp_path / "empty")
    for name in ("chat-embed", "chat-small"):
        (empty / "leases" / f"{name}.yaml").unlink()
    lock = empty / "pools" / "placement.lock.yaml"
    lock.write_text(lock.read_text().replace("leases: [chat-embed, chat-small]", "leases: []")
                    .replace("quotas: {chat-embed: 5, chat-small: 2}", "quotas: {}")
                    .replace("backends: [python]", "backends: []"))
    a, b = _objects(full), _objects(empty)
    assert dump_object(_pod(a, "shared-t4-pool-0")) == dump_object(_pod(b, "shared-t4-pool-0"))
    assert a[("ServiceAccount", "shared-t4-pool-0")] == b[("ServiceAccount", "shared-t4-pool-0")]


def test_volume_repositories_are_mounted_into_triton_where_the_agent_links(tmp_path: Path) -> None:
    objs = _objects(copy_example(tmp_path / "r"))
    for name in ("text-ensemble", "cpu-inference-pool-0"):  # bespoke, and pool instance (ranker)
        pod = _pod(objs, name)
        triton, agent = _container(pod, "triton"), _container(pod, "agent")
        mount = {"name": "repo-shared-nfs", "mountPath": "/var/run/tms/volumes/shared-nfs", "readOnly": True}
        assert mount in triton["volumeMounts"] and mount in agent["volumeMounts"], name
        claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "repo-shared-nfs")
        assert claim["persistentVolumeClaim"] == {"claimName": "triton-models-nfs", "readOnly": True}
    # Secrets stay with the agent: Triton's model code never sees repository credentials.
    triton = _container(_pod(objs, "fraud-detector"), "triton")
    assert not [m for m in triton["volumeMounts"] if m["mountPath"].startswith("/var/run/tms/secrets")]


def test_each_pod_makes_its_own_key_and_nothing_shares_it(tmp_path: Path) -> None:
    objs = _objects(copy_example(tmp_path / "r"))
    for (kind, name), obj in objs.items():
        if kind != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        init = pod["initContainers"]
        assert [c["args"] for c in init] == [["agent-key", "/var/run/tms/repo-key/value"]], name
        key_volume = next(v for v in pod["volumes"] if v["name"] == "repo-key")
        assert key_volume["emptyDir"]["medium"] == "Memory", name
        triton, agent = _container(obj["spec"]["template"], "triton"), _container(obj["spec"]["template"], "agent")
        assert triton["command"][:2] == ["/bin/sh", "-c"] and "read -r key < /var/run/tms/repo-key/value" in triton["command"][2]
        # No `$(...)` the kubelet would try to expand as a variable reference.
        assert "$(" not in "".join(triton["command"]), name
        assert {"name": "TMS_REPO_KEY_FILE", "value": "/var/run/tms/repo-key/value"} in agent["env"]
        # Never in a Secret, an environment variable or the rendered arguments.
        text = dump_object(obj)
        assert "secretKeyRef" not in text and "TMS_REPO_KEY\n" not in text and "$(TMS_REPO_KEY)" not in text
        assert not any("restricted" in a for a in triton["args"]), name
    assert not [k for k in objs if k[0] == "Secret"]


def test_without_restricted_access_there_is_no_key(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "r")
    limits = repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("enableRestrictedAccess: true", "enableRestrictedAccess: false"))
    pod = _pod(_objects(repo), "fraud-detector")
    assert "initContainers" not in pod["spec"]
    assert _container(pod, "triton")["command"] == ["tritonserver"]
    assert not [v for v in pod["spec"]["volumes"] if v["name"] == "repo-key"]


def test_a_network_policy_per_triton_deployment(tmp_path: Path) -> None:
    objs = _objects(copy_example(tmp_path / "r"))
    deployments = {name for kind, name in objs if kind == "Deployment"}
    policies = {name for kind, name in objs if kind == "NetworkPolicy"}
    assert deployments == policies
    policy = objs[("NetworkPolicy", "shared-t4-pool-0")]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"tms-stack.dev/instance": "shared-t4-pool-0"}}
    clients, monitoring = policy["ingress"]
    assert "from" not in clients and sorted(p["port"] for p in clients["ports"]) == [8000, 8001]
    assert monitoring["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert sorted(p["port"] for p in monitoring["ports"]) == [8002, 8080]


def test_with_tls_clients_reach_grpc_only_and_the_monitoring_namespace_is_a_setting(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "r")
    stack = repo / "Pulumi.example.yaml"
    stack.write_text(stack.read_text().replace(
        "    ruleLabels: {release: prometheus}\n",
        "    ruleLabels: {release: prometheus}\n    namespace: observability\n")
        + "  tms-stack:tls: {issuerName: ca-issuer}\n")
    policy = _objects(repo)[("NetworkPolicy", "fraud-detector")]["spec"]
    assert [p["port"] for p in policy["ingress"][0]["ports"]] == [8001]
    assert policy["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"}


def test_agent_is_told_the_load_timeout_and_readiness_mode(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "r")
    stack = repo / "Pulumi.example.yaml"
    stack.write_text(stack.read_text() + "  tms-stack:startupTimeout: 3h\n")
    objs = _objects(repo)
    for name, mode in (("fraud-detector", "all-models"), ("shared-t4-pool-0", "first-pass")):
        env = {e["name"]: e.get("value") for e in _container(_pod(objs, name), "agent")["env"]}
        assert env["TMS_LOAD_TIMEOUT"] == "10800" and env["TMS_READINESS"] == mode, name


def test_only_the_agent_gets_an_api_token_and_it_may_read_only_its_own_configmap(tmp_path: Path) -> None:
    """Triton runs tenant code (Python-backend models): no API token may reach it. The agent's token
    is bound to a Role naming this Deployment's desired-models ConfigMap alone, read-only."""
    objs = _objects(copy_example(tmp_path))
    deployments = [name for kind, name in objs if kind == "Deployment"]
    assert {"shared-t4-pool-0", "image-classifier"} <= set(deployments)
    for name in deployments:
        pod = _pod(objs, name)["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert objs[("ServiceAccount", name)]["automountServiceAccountToken"] is False
        token_volumes = {v["name"] for v in pod["volumes"]
                         if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
        assert token_volumes == {"kube-api"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert ("kube-api" in mounted) == (container["name"] == "agent"), (name, container["name"])
        agent_env = {e["name"]: e.get("value") for e in _container(_pod(objs, name), "agent")["env"]}
        assert agent_env["TMS_DESIRED_CONFIGMAP"] == name
        assert ("ConfigMap", name) in objs
        role = objs[("Role", name)]
        assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
                                  "verbs": ["get", "list", "watch"]}], name
        binding = objs[("RoleBinding", name)]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name,
                                        "namespace": objs[("ConfigMap", name)]["metadata"]["namespace"]}]
        assert pod["serviceAccountName"] == name
    # No other Role or binding exists (nothing else is granted to any pod).
    assert {n for k, n in objs if k in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")} == set(deployments)
