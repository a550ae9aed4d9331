"""A small Kubernetes API client for the end-to-end tests (requests + discovery, nothing else).

It speaks to the test control plane that ``conftest.py`` starts: server-side apply with strict
field validation, get/list/delete, and the ``(apiVersion, kind) -> resource`` mapping from API
discovery. It is deliberately tiny so that what the tests assert is what the API server did.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests

OBJ = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group_version: str  # "v1", "apps/v1", "monitoring.coreos.com/v1"
    plural: str
    kind: str
    namespaced: bool

    def base(self, namespace: str | None) -> str:
        prefix = "/api/" if "/" not in self.group_version else "/apis/"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{prefix}{self.group_version}{ns}/{self.plural}"


class ApiError(RuntimeError):
    def __init__(self, response: requests.Response):
        self.status = response.status_code
        try:
            body = response.json()
            message = body.get("message", response.text)
        except ValueError:
            message = response.text
        self.body_message = message
        super().__init__(f"{response.request.method} {response.url}: {response.status_code} {message}")


class Kube:
    def __init__(self, server: str, token: str, ca_file: str):
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        # passed with every request: a session-level `verify` loses to REQUESTS_CA_BUNDLE
        self.ca_file = ca_file
        self._resources: dict[tuple[str, str], Resource] = {}

    # --- plumbing -----------------------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        kw.setdefault("verify", self.ca_file)
        r = self.session.request(method, self.server + path, **kw)
        if r.status_code >= 400:
            raise ApiError(r)
        return r

    def discover(self) -> None:
        """(Re)load API discovery: every served (apiVersion, kind) and its resource."""
        found: dict[tuple[str, str], Resource] = {}
        gvs = ["v1"]
        for g in self.request("GET", "/apis").json()["groups"]:
            gvs += [v["groupVersion"] for v in g["versions"]]
        for gv in gvs:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            for res in self.request("GET", path).json()["resources"]:
                if "/" in res["name"]:
                    continue  # subresources
                found[(gv, res["kind"])] = Resource(gv, res["name"], res["kind"], res["namespaced"])
        self._resources = found

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            self.discover()
        if key not in self._resources:
            raise KeyError(f"the API server serves no {kind} in {api_version}")
        return self._resources[key]

    def path(self, obj: OBJ) -> str:
        res = self.resource(obj["apiVersion"], obj["kind"])
        md = obj["metadata"]
        return f"{res.base(md.get('namespace'))}/{md['name']}"

    # --- verbs --------------------------------------------------------------------------------

    def apply(self, obj: OBJ, *, manager: str = "tms-e2e", dry_run: bool = False) -> OBJ:
        """Server-side apply with strict field validation (unknown or duplicate fields fail)."""
        params = {"fieldManager": manager, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        r = self.request(
            "PATCH",
            self.path(obj),
            params=params,
            json=obj,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return r.json()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> OBJ | None:
        res = self.resource(api_version, kind)
        try:
            return self.request("GET", f"{res.base(namespace)}/{name}").json()
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[OBJ]:
        res = self.resource(api_version, kind)
        params = {"labelSelector": selector} if selector else {}
        items = self.request("GET", res.base(namespace), params=params).json()["items"]
        for it in items:  # list items carry no apiVersion/kind
            it.setdefault("apiVersion", api_version)
            it.setdefault("kind", kind)
        return items

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        res = self.resource(api_version, kind)
        try:
            self.request("DELETE", f"{res.base(namespace)}/{name}", json={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status != 404:
                raise

    def ensure_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # --- CRDs ---------------------------------------------------------------------------------

    def install_crds(self, crds: Iterable[OBJ], timeout_s: float = 60) -> None:
        """Apply CRDs and wait until each is Established and served by discovery."""
        crds = list(crds)
        for crd in crds:
            self.apply(crd, manager="tms-e2e-crds")
        deadline = time.monotonic() + timeout_s
        for crd in crds:
            name = crd["metadata"]["name"]
            while True:
                cur = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
                conds = {c["type"]: c["status"] for c in (cur.get("status") or {}).get("conditions") or []}
                if conds.get("Established") == "True":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} not Established after {timeout_s}s: {conds}")
                time.sleep(0.2)
        # discovery lags establishment by a moment
        wanted = {
            (f"{c['spec']['group']}/{v['name']}", c["spec"]["names"]["kind"])
            for c in crds
            for v in c["spec"]["versions"]
            if v.get("served")
        }
        while True:
            self.discover()
            if wanted <= set(self._resources):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not in discovery after {timeout_s}s: {wanted - set(self._resources)}")
            time.sleep(0.2)
