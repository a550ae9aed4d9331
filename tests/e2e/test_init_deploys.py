"""A fleet made by `tms init` deploys with the real Pulumi engine: its Pulumi.yaml (main: program/,
virtualenv .venv) runs the installed tms-stack's program on the fleet's files, and `pulumi up` of
one lease creates that lease's Deployment on the test control plane."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.kubeapi import Kube

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
TMS = str(ROOT / ".venv" / "bin" / "tms")


def test_a_tms_init_fleet_deploys_a_lease(tmp_path: Path, kube: Kube, namespace: str,
                                          pulumi_factory) -> None:  # type: ignore[no-untyped-def]
    fleet = tmp_path / "fleet"
    env = {**os.environ, "NO_COLOR": "1"}
    for argv in ([TMS, "init", str(fleet), "--stack", "prod", "--namespace", namespace],
                 [TMS, "lease", "create", "first-model", "-m",
                  "name=first_model,uri=https://models.example.com/first.zip", "--owner", "my-team"]):
        out = subprocess.run(argv, cwd=tmp_path if argv[1] == "init" else fleet, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    # As the deploy workflow has it: tms-stack installed into the fleet's .venv (here: this checkout's).
    (fleet / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    with (fleet / "Pulumi.prod.yaml").open("a") as f:
        f.write("  tms-stack:deployTimeout: 3m\n")  # kwok makes pods Ready in seconds
    pulumi = pulumi_factory(fleet, "prod")
    pulumi.up()
    deployment = kube.get("apps/v1", "Deployment", "first-model", namespace)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "tms-stack"
    # A second up changes nothing: the program is deterministic from the fleet's files.
    again = pulumi.run("preview", "--expect-no-changes")
    assert again.returncode == 0
