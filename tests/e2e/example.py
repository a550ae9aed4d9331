"""The bundled example repository as the end-to-end tests use it: a private copy, `tms render`,
and comparisons between rendered objects and what the API server stores."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import copy_example
from tests.e2e.kubeapi import Kube
from tms_stack.logic.drift import differences as drift_differences

ROOT = Path(__file__).resolve().parents[2]
STACK = "example"
OBJ = dict[str, Any]
Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def key(obj: OBJ) -> Key:
    md = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], md.get("namespace") or "", md["name"])


def fmt(k: Key) -> str:
    return f"{k[1]} {k[2]}/{k[3]}" if k[2] else f"{k[1]} {k[3]}"


def require_render() -> None:
    """Skip (naming what is missing) until `tms render` exists; the other modules are written
    in parallel with these tests."""
    import pytest

    p = subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "render", "--help"], capture_output=True, text=True)
    if p.returncode != 0:
        text = " ".join((p.stderr + p.stdout).replace("│", " ").split())
        pytest.skip(f"`tms render` is not available yet (`tms render --help` exited {p.returncode}: {text[-160:]})")


def require_program() -> None:
    import pytest

    if not (ROOT / "tms_stack" / "__main__.py").exists():
        pytest.skip("the Pulumi program tms_stack/__main__.py does not exist yet")


class ExampleRepo:
    """A copy of the repository's example (leases/, pools/, policies/, Pulumi.*.yaml) that is also
    a Pulumi project running the repository's own program and virtualenv."""

    def __init__(self, path: Path, namespace: str):
        self.path = copy_example(path)
        self.namespace = namespace
        # the program is the repository's package; the copy only links to it
        (self.path / "tms_stack").symlink_to(ROOT / "tms_stack", target_is_directory=True)
        project = yaml.safe_load((self.path / "Pulumi.yaml").read_text())
        project.setdefault("runtime", {}).setdefault("options", {})["virtualenv"] = str(ROOT / ".venv")
        (self.path / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        self.set_stack_config("tms-stack:namespace", namespace)
        # kwok makes pods Ready within seconds; should one never be, fail in minutes, not 30
        self.set_stack_config("tms-stack:deployTimeout", "3m")

    @property
    def stack_file(self) -> Path:
        return self.path / f"Pulumi.{STACK}.yaml"

    def set_stack_config(self, name: str, value: Any) -> None:
        """Edit Pulumi.<stack>.yaml directly (both `tms render` and the program read it)."""
        doc = yaml.safe_load(self.stack_file.read_text()) or {}
        doc.setdefault("config", {})[name] = value
        self.stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def tms(self, *args: str) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "tms"), *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "NO_COLOR": "1"},
        )
        if p.returncode != 0:
            raise AssertionError(f"`tms {' '.join(args)}` exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def render(self, out: Path) -> dict[Key, OBJ]:
        """`tms render --out OUT`: every object, by (apiVersion, kind, namespace, name)."""
        self.tms("render", "--out", str(out), "--stack", STACK)
        objs: dict[Key, OBJ] = {}
        for f in sorted(out.rglob("*.y*ml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not doc:
                    continue
                docs = doc["items"] if doc.get("kind") == "List" else [doc]
                for d in docs:
                    k = key(d)
                    assert k not in objs, f"{fmt(k)} rendered twice ({f})"
                    objs[k] = d
        assert objs, f"`tms render` wrote no objects into {out}"
        return objs

    def lease_file(self, name: str) -> Path:
        return self.path / "leases" / f"{name}.yaml"


def create_admin_prerequisites(kube: Kube, repo: ExampleRepo) -> list[str]:
    """What the admins provide and the stack only refers to: the claims of the `volumes`
    repositories (bound to a PersistentVolume, or the scheduler keeps the pods Pending) and the
    Secrets named by policies and stack settings (placeholder values)."""
    made: list[str] = []
    ns = repo.namespace
    secrets: set[str] = set()
    for f in sorted((repo.path / "policies").glob("*.y*ml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc or doc.get("kind") != "Repositories":
                continue
            spec = doc.get("spec") or {}
            for vol in spec.get("volumes") or []:
                claim = vol["volumeClaimName"]
                pv = f"{ns}-{claim}"[:253]
                kube.apply({
                    "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                             "hostPath": {"path": f"/nonexistent/{pv}"},
                             "claimRef": {"namespace": ns, "name": claim}},
                })
                kube.apply({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": ns},
                    "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                             "resources": {"requests": {"storage": "1Gi"}}},
                })
                made.append(f"PersistentVolumeClaim {ns}/{claim}")
            for s3 in spec.get("s3") or []:
                secrets.update(x for x in (s3.get("accessKey"), s3.get("secretKey")) if x)
            for h in spec.get("https") or []:
                if h.get("secretName"):
                    secrets.add(h["secretName"])
    for name in sorted(secrets):
        kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                    "stringData": {"value": "e2e-placeholder"}})
        made.append(f"Secret {ns}/{name}")
    deadline = time.monotonic() + 60
    for claim in [m.split("/")[-1] for m in made if m.startswith("PersistentVolumeClaim")]:
        while (kube.get("v1", "PersistentVolumeClaim", claim, ns) or {}).get("status", {}).get("phase") != "Bound":
            assert time.monotonic() < deadline, f"claim {claim} not Bound after 60s"
            time.sleep(0.2)
    return made


# ---------------------------------------------------------------------------------------------
# comparing rendered objects with live ones

# The comparison is the product's own (`tms drift`): tms_stack/logic/drift.py.
differences = drift_differences


def live_objects(kube: Kube, keys: Iterable[Key]) -> dict[Key, OBJ | None]:
    return {k: kube.get(k[0], k[1], k[3], k[2] or None) for k in keys}


def assert_server_holds(kube: Kube, rendered: dict[Key, OBJ]) -> dict[Key, OBJ]:
    """Every rendered object is on the server, with every rendered field as rendered."""
    live = live_objects(kube, rendered)
    missing = [fmt(k) for k, v in live.items() if v is None]
    assert not missing, f"not on the API server: {missing}"
    problems = []
    for k, obj in rendered.items():
        body = {f: v for f, v in obj.items() if f not in ("apiVersion", "kind", "status")}
        problems += [f"{fmt(k)} {d}" for d in differences(body, live[k])]
    assert not problems, "live objects differ from `tms render`:\n" + "\n".join(problems[:60])
    return live  # type: ignore[return-value]


def tms_objects_in(kube: Kube, namespace: str, kinds: Iterable[tuple[str, str]]) -> set[Key]:
    """Every object of the given kinds in the namespace that Pulumi or render could own
    (the API server's own objects, such as the default ServiceAccount, are left out)."""
    found: set[Key] = set()
    for api_version, kind in kinds:
        for o in kube.list(api_version, kind, namespace):
            if kind == "ServiceAccount" and o["metadata"]["name"] == "default":
                continue
            if kind == "ConfigMap" and o["metadata"]["name"] == "kube-root-ca.crt":
                continue
            found.add((api_version, kind, namespace, o["metadata"]["name"]))
    return found
