"""The admin's one-time setup of a fleet's stack for the workflow runs, and what each run needs:
the stack file pointed at the test cluster's namespace (committed, as the admin would), the stack
created in a file backend (on GitHub: PULUMI_ACCESS_TOKEN or a self-managed backend), the salt
`stack init` writes committed too, the runner's environment for that backend and the `KUBECONFIG`
secret. Shared by the kwok afternoon (test_deploy.py) and the real node's day
(tests/e2e/node/test_node_day.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.e2e.conftest import pulumi_environment
from tests.e2e.example import key
from tests.e2e.workflows.act import ROOT, Fleet, git


class StackAdmin:
    def __init__(self, fleet: Fleet, stack: str, namespace: str, kubeconfig: Path, pulumi_tools: list[str],
                 workdir: Path, config: dict[str, str] | None = None):
        self.fleet, self.stack, self.namespace = fleet, stack, namespace
        stack_file = fleet.work / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(stack_file.read_text())
        doc["config"].update({"tms-stack:namespace": namespace, **(config or {})})
        stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        if git(fleet.work, "status", "--porcelain"):
            fleet.commit("admin: this cluster's namespace")
        state, home = workdir / "pulumi-state", workdir / "admin-home"
        state.mkdir(parents=True)
        home.mkdir(parents=True)
        self.pulumi_env = pulumi_environment(pulumi_tools, kubeconfig, home, state)
        self.pulumi("stack", "init", stack)
        # `stack init` writes the passphrase provider's salt into the stack file: the admin commits
        # it (otherwise every pull request would carry it, and review's scope check would see a
        # change to more than leases/ and pools/)
        assert "encryptionsalt:" in stack_file.read_text()
        fleet.commit("admin: the stack's secrets salt")
        git(fleet.work, "push", "-q", "origin", "main")
        self.runner_env = {"PULUMI_BACKEND_URL": f"file://{state}", "PULUMI_CONFIG_PASSPHRASE": "tms-e2e",
                           "PULUMI_SKIP_UPDATE_CHECK": "true",
                           # a plugin not on PATH is an error, never a download
                           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}
        # the control plane writes its kubeconfig as JSON: one line, as a pasted secret would be
        self.secrets = {"KUBECONFIG": json.dumps(json.loads(kubeconfig.read_text()))}

    def pulumi(self, *args: str) -> str:
        p = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=self.fleet.work, env=self.pulumi_env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout.strip()

    def deployed(self) -> str:
        """The commit the stack records as deployed (deploy.yml's `tms:deployed` tag)."""
        return self.pulumi("stack", "tag", "get", "tms:deployed", "--stack", self.stack)

    def render(self, out: Path) -> dict:
        """`tms render` of main, as it is on the server now: {key: object}."""
        git(self.fleet.work, "fetch", "-q", "origin")
        git(self.fleet.work, "checkout", "-q", "-B", "main", "origin/main")
        subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "render", "--stack", self.stack, "--out", str(out)],
                       cwd=self.fleet.work, check=True, capture_output=True)
        objs = {}
        for f in sorted(out.rglob("*.y*ml")):
            for doc in yaml.safe_load_all(f.read_text()):
                for d in (doc["items"] if doc and doc.get("kind") == "List" else [doc] if doc else []):
                    objs[key(d)] = d
        return objs
