"""Cluster checks before the first deploy (docs/admin-setup.md, steps 4-8), through the same
`kubernetes` client and kubeconfig rules as `tms lease status`.

What is checked comes from what the stack renders, so it cannot drift from the program: every
(apiVersion, kind) it would apply must be served (CRDs: PodMonitor, PrometheusRule, Certificate)
and allowed to the identity of the kubeconfig (SelfSubjectAccessReview: get, list, create, patch,
delete in the namespace); every Secret and claim its pods mount must exist; HPAs on Pods metrics
need the custom metrics API (prometheus-adapter), External metrics the external one. Policies and
stack settings add the Secrets that no rendered object names yet (an emptied template)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tms_stack.commands.doctor import Check
from tms_stack.outside.neterrors import network_reason
from tms_stack.outside.status import ClusterUnreachable, _api_client

TIMEOUT_S = 10
VERBS = ("get", "list", "create", "patch", "delete")
# Kubernetes lets an identity create a Role only with permissions it holds itself (RBAC's escalation
# rule): each Triton Deployment's Role grants get/list/watch on its own ConfigMap, so the deployer
# also needs `watch` on ConfigMaps (docs/admin-setup.md).
EXTRA_VERBS = {("v1", "ConfigMap"): ("watch",)}
# Kinds every deploy applies, even from an empty repository (the stack's own objects).
BASE_KINDS = {("v1", "ConfigMap"), ("v1", "Service"), ("v1", "ServiceAccount"), ("apps/v1", "Deployment")}


def have_kubeconfig(kubeconfig: str | None, context: str | None) -> bool:
    if kubeconfig or context or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return any(Path(p).is_file() for p in paths) or (not paths and (Path.home() / ".kube" / "config").is_file())


def _walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def references(objects: list[dict[str, Any]], repo: Any, settings: Any) -> dict[str, set[str]]:
    """Secrets, claims, images and metric APIs the deploy will need (what the pods mount, what the
    HPAs read), plus the Secrets named by policies and the stack."""
    refs: dict[str, set[str]] = {"secrets": set(), "claims": set(), "images": set(), "metrics": set()}
    for obj in objects:
        for node in _walk(obj):
            if isinstance(node.get("secret"), dict) and node["secret"].get("secretName"):
                refs["secrets"].add(node["secret"]["secretName"])
            if isinstance(node.get("persistentVolumeClaim"), dict):
                refs["claims"].add(node["persistentVolumeClaim"].get("claimName", ""))
            if isinstance(node.get("image"), str) and "name" in node:
                refs["images"].add(node["image"])
            if isinstance(node.get("imagePullSecrets"), list):
                refs["secrets"].update(s.get("name", "") for s in node["imagePullSecrets"])
        if obj.get("kind") == "HorizontalPodAutoscaler":
            for metric in obj.get("spec", {}).get("metrics") or []:
                refs["metrics"].add(metric.get("type", ""))
    if repo is not None:
        spec = repo.repositories.spec
        for s3 in spec.s3:
            refs["secrets"].update(x for x in (s3.accessKey, s3.secretKey) if x)
        refs["secrets"].update(h.secretName for h in spec.https)
        refs["claims"].update(v.volumeClaimName for v in spec.volumes)
        refs["images"].add(repo.allowlist.spec.default)
    refs["secrets"].update(settings.imagePullSecrets)
    refs["images"].add(settings.agentImage)
    for key in refs:
        refs[key].discard("")
    return refs


class _Cluster:
    def __init__(self, api: Any):
        from kubernetes import client

        self.api = api
        self.core = client.CoreV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.apireg = client.ApiregistrationV1Api(api)

    def get_json(self, path: str) -> Any:
        return self.api.call_api(path, "GET", response_types_map={200: "object"}, auth_settings=["BearerToken"],
                                 _return_http_data_only=True, _request_timeout=TIMEOUT_S,
                                 header_params={"Accept": "application/json"})

    def plural(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """(resource, namespaced) when the API server serves the kind; None when it does not."""
        from kubernetes.client.rest import ApiException

        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = self.get_json(path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        for res in doc.get("resources") or []:
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                return res["name"], bool(res.get("namespaced"))
        return None

    def allowed(self, namespace: str, group: str, resource: str, verb: str) -> bool:
        from kubernetes import client

        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, group=group,
                                                            resource=resource, verb=verb)))
        answer = self.authz.create_self_subject_access_review(review, _request_timeout=TIMEOUT_S)
        return bool(answer.status and answer.status.allowed)


def cluster_checks(settings: Any, objects: list[dict[str, Any]], repo: Any, kubeconfig: str | None,
                   context: str | None, namespace: str | None = None) -> list[Check]:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError


    ns = namespace or settings.namespace
    if not have_kubeconfig(kubeconfig, context):
        return [Check("cluster", "kubeconfig", "skip", "no kubeconfig (KUBECONFIG, ~/.kube/config): cluster "
                      "checks skipped", "tms doctor --kubeconfig FILE [--context NAME]")]
    try:
        api = _api_client(kubeconfig, context)
        cluster = _Cluster(api)
        from kubernetes import client
        version = client.VersionApi(api).get_code(_request_timeout=TIMEOUT_S)
    except ClusterUnreachable as exc:
        return [Check("cluster", "kubeconfig", "fail", str(exc), "check --kubeconfig / --context")]
    except (ApiException, HTTPError, OSError) as exc:
        why = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else network_reason(exc)
        return [Check("cluster", "reachable", "fail", f"cannot reach {api.configuration.host} ({why})",
                      "check the kubeconfig's server and credentials (kubectl version)")]
    checks = [Check("cluster", "reachable", "ok", f"{api.configuration.host}, Kubernetes {version.git_version}")]
    if not api.configuration.verify_ssl:
        checks.append(Check("cluster", "tls", "warn", f"the kubeconfig turns off TLS verification of "
                            f"{api.configuration.host} (insecure-skip-tls-verify)",
                            "set certificate-authority-data for the cluster instead"))
    try:
        checks += _namespace_and_objects(cluster, ns, settings, objects, repo)
    except (ApiException, HTTPError, OSError) as exc:
        why = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else network_reason(exc)
        checks.append(Check("cluster", "api", "fail", f"the cluster stopped answering ({why})",
                            "run tms doctor again"))
    return checks


def _namespace_and_objects(cluster: _Cluster, ns: str, settings: Any, objects: list[dict[str, Any]],
                           repo: Any) -> list[Check]:
    from kubernetes.client.rest import ApiException

    checks: list[Check] = []
    try:
        cluster.core.read_namespace(ns, _request_timeout=TIMEOUT_S)
        checks.append(Check("cluster", "namespace", "ok", f"namespace {ns} exists"))
    except ApiException as exc:
        if exc.status == 404:
            checks.append(Check("cluster", "namespace", "fail", f"namespace {ns} does not exist",
                                f"kubectl create namespace {ns}"))
        elif exc.status == 403:
            checks.append(Check("cluster", "namespace", "warn", f"not allowed to read namespace {ns}; "
                                "assuming it exists"))
        else:
            raise
    kinds = BASE_KINDS | {(o["apiVersion"], o["kind"]) for o in objects}
    denied: list[str] = []
    for api_version, kind in sorted(kinds):
        found = cluster.plural(api_version, kind)
        if found is None:
            hint = {"monitoring.coreos.com": "install prometheus-operator's CRDs (kube-prometheus-stack)",
                    "cert-manager.io": "install cert-manager"}.get(api_version.split("/")[0],
                                                                   f"install the CRD of {kind}")
            checks.append(Check("cluster", f"kind {kind}", "fail",
                                f"{kind} ({api_version}) is not served by the API server", hint))
            continue
        resource, namespaced = found
        group = api_version.rpartition("/")[0]
        verbs = VERBS + EXTRA_VERBS.get((api_version, kind), ())
        missing = [v for v in verbs if not cluster.allowed(ns if namespaced else "", group, resource, v)]
        name = f"{resource}.{group}" if group else resource
        if missing:
            denied.append(name)
            checks.append(Check("cluster", f"rbac {name}", "fail",
                                f"this identity may not {', '.join(missing)} {name} in {ns}",
                                f"kubectl -n {ns} create role tms-deploy-{resource} --verb={','.join(verbs)} "
                                f"--resource={name} && kubectl -n {ns} create rolebinding tms-deploy-{resource} "
                                f"--role=tms-deploy-{resource} --serviceaccount=NAMESPACE:DEPLOYER"))
        else:
            checks.append(Check("cluster", f"rbac {name}", "ok", f"{kind}: {', '.join(verbs)} allowed in {ns}"))
    refs = references(objects, repo, settings)
    for secret in sorted(refs["secrets"]):
        checks.append(_exists(cluster.core.read_namespaced_secret, "Secret", secret, ns,
                              f"kubectl -n {ns} create secret generic {secret} --from-file=value=FILE"))
    for claim in sorted(refs["claims"]):
        checks.append(_exists(cluster.core.read_namespaced_persistent_volume_claim, "PersistentVolumeClaim",
                              claim, ns, f"create the PersistentVolumeClaim {claim} in {ns} (ReadOnlyMany)"))
    for metric_type, service, what in (("Pods", "v1beta1.custom.metrics.k8s.io", "prometheus-adapter"),
                                       ("External", "v1beta1.external.metrics.k8s.io",
                                        "prometheus-adapter's external metrics")):
        if metric_type in refs["metrics"]:
            checks.append(_api_service(cluster, service, what))
    for image in sorted(refs["images"] - {settings.agentImage}):  # the stack check names the agent's
        # Pulling needs the node's credentials; doctor names what the nodes will pull.
        checks.append(Check("images", image, "ok", "named (pulled by the nodes; not checked from here)"))
    return checks


def _exists(read: Any, kind: str, name: str, ns: str, fix: str) -> Check:
    from kubernetes.client.rest import ApiException

    try:
        read(name, ns, _request_timeout=TIMEOUT_S)
        return Check("cluster", f"{kind} {name}", "ok", f"{kind} {ns}/{name} exists")
    except ApiException as exc:
        if exc.status == 404:
            return Check("cluster", f"{kind} {name}", "fail", f"{kind} {ns}/{name} does not exist", fix)
        if exc.status == 403:
            return Check("cluster", f"{kind} {name}", "warn", f"not allowed to read {kind} {ns}/{name}: "
                         "cannot tell whether it exists", f"kubectl -n {ns} get {kind.lower()} {name}")
        raise


def _api_service(cluster: _Cluster, name: str, what: str) -> Check:
    from kubernetes.client.rest import ApiException

    try:
        svc = cluster.apireg.read_api_service(name, _request_timeout=TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return Check("cluster", name, "fail", f"the HPAs read {name}, which is not registered",
                         f"install {what} (docs/admin-setup.md)")
        if exc.status == 403:
            return Check("cluster", name, "warn", f"not allowed to read APIService {name}")
        raise
    conditions = (svc.status.conditions if svc.status else None) or []
    available = next((c for c in conditions if c.type == "Available"), None)
    if available is not None and available.status == "True":
        return Check("cluster", name, "ok", f"{name} is Available")
    reason = f"{available.reason}: {available.message}" if available is not None else "no Available condition"
    return Check("cluster", name, "fail", f"{name} is registered but not Available ({reason})",
                 f"kubectl get apiservice {name} -o yaml; check {what}'s pods")
