"""Every flag of the tmsctl reference (TMS guide, "Triton Management Service Control") with TMS's
meaning: what it writes into the file, what it implies, and what it refuses. No option is
dropped: each case asserts the effect in the written lease or pool, or the refusal."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from tms_stack.cli import app

FIXTURE = ROOT / "tests" / "fixtures" / "tmsguide"
NOW = "2026-11-22T00:00:00Z"
M = "name=my_model,uri=model://volume-models/my_model"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "guide"
    shutil.copytree(FIXTURE, root)
    (root / "pools" / "shared_pool.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Pool\nmetadata: {name: Shared_Pool}\n"
        "spec: {instanceQuota: 8, instances: {min: 0, max: 2}}\n")
    monkeypatch.delenv("TMS_OWNER", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def tms(repo: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--root", str(repo)])
    out = result.stdout + result.stderr
    assert result.exit_code == code, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    # Machine-readable output is stdout alone (notes go to stderr).
    return result.stdout if code == 0 and ("-z" in args or "-o" in args) else out


def lease(repo: Path, name: str) -> dict[str, Any]:
    return yaml.safe_load((repo / "leases" / f"{name}.yaml").read_text())


CREATE_EFFECTS: list[tuple[list[str], str, dict[str, Any]]] = [
    # (extra flags, spec path, expected value)
    (["--duration", "1h30m"], "expires", "2026-11-22T01:30:00Z"),
    (["-m", "name=second,uri=http://host:8000/second,count=3"], "models.1", {"name": "second", "uri": "http://host:8000/second", "count": 3}),
    (["--auto-renew"], "autoRenew", {}),
    (["--auto-renew", "--auto-renew-activity-window", "30m"], "autoRenew", {"activityWindow": "30m"}),
    (["--auto-renew", "--renewal-duration", "4h"], "autoRenew", {"renewalDuration": "4h"}),
    (["--enable-autoscaling"], "triton.autoscaling", {}),
    # tmsctl: these imply --enable-autoscaling.
    (["--autoscaling-max-replicas", "4"], "triton.autoscaling", {"maxReplicas": 4}),
    (["--autoscaling-min-replicas", "1"], "triton.autoscaling", {"minReplicas": 1}),
    (["--autoscaling-metric-cpu-utilization", "enable"], "triton.autoscaling.metrics", {"cpuUtilization": {"enabled": True}}),
    (["--autoscaling-metric-gpu-utilization", "disable", "--autoscaling-metric-cpu-utilization", "enable"],
     "triton.autoscaling.metrics", {"gpuUtilization": {"enabled": False}, "cpuUtilization": {"enabled": True}}),
    (["--autoscaling-metric-gpu-utilization", "server-default"], "triton.autoscaling", {}),
    (["--autoscaling-metric-cpu-utilization-threshold", "75"], "triton.autoscaling.metrics", {"cpuUtilization": {"threshold": 75}}),
    (["--autoscaling-metric-gpu-utilization-threshold", "80"], "triton.autoscaling.metrics", {"gpuUtilization": {"threshold": 80}}),
    (["--autoscaling-metric-queue-time", "enable", "--autoscaling-metric-queue-time-threshold", "200ms"],
     "triton.autoscaling.metrics", {"queueTime": {"enabled": True, "threshold": "200ms"}}),
    (["--autoscaling-metric-queue-time-percentage", "enable", "--autoscaling-metric-queue-time-percentage-threshold", "40"],
     "triton.autoscaling.metrics", {"queueTimePercentage": {"enabled": True, "threshold": 40}}),
    (["-i", "nvcr.io/nvidia/tritonserver:23.09-py3"], "triton.image", "nvcr.io/nvidia/tritonserver:23.09-py3"),
    (["--triton-image", "nvcr.io/nvidia/tritonserver:23.09-py3"], "triton.image", "nvcr.io/nvidia/tritonserver:23.09-py3"),
    (["--triton-resources", "cpu=4;gpu=0;repository-size=4Gi;system-memory=8Gi;shared-memory=512Mi"], "triton.resources",
     {"cpu": 4, "gpu": 0, "repositorySize": "4Gi", "systemMemory": "8Gi", "sharedMemory": "512Mi"}),
    # Pool names are case-insensitive: the pool's own spelling is written.
    (["-p", "shared_pool", "--quota", "2"], "pool", {"name": "Shared_Pool", "quota": 2}),
    (["--triton-pool", "SHARED_POOL", "--quota", "1"], "pool", {"name": "Shared_Pool", "quota": 1}),
]


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if part.isdigit() else data[part]
    return data


@pytest.mark.parametrize("flags, path, value", CREATE_EFFECTS, ids=[" ".join(c[0]) for c in CREATE_EFFECTS])
def test_lease_create_flag_takes_effect(repo: Path, flags: list[str], path: str, value: Any) -> None:
    out = tms(repo, "lease", "create", "-m", M, *flags, "--now", NOW)
    assert out.startswith("Lease my-model\n")
    spec = lease(repo, "my-model")["spec"]
    if path == "expires":
        assert spec["expires"].strftime("%Y-%m-%dT%H:%M:%SZ") == value
    else:
        assert _at(spec, path) == value
    assert lease(repo, "my-model")["metadata"]["owner"] == "guide-users"  # from .tms.yaml


REFUSALS: list[tuple[list[str], int, str]] = [
    (["-p", "shared_pool"], 2, "needs --quota"),
    (["--quota", "2"], 2, "--quota needs -p/--triton-pool"),
    (["-p", "shared_pool", "--quota", "1", "--enable-autoscaling"], 2, "cannot go with --enable-autoscaling"),
    (["-p", "shared_pool", "--quota", "1", "--autoscaling-max-replicas", "3"], 2, "--autoscaling-max-replicas"),
    (["-p", "shared_pool", "--quota", "1", "-i", "nvcr.io/nvidia/tritonserver:23.09-py3"], 2, "--triton-image"),
    (["-p", "shared_pool", "--quota", "1", "--triton-resources", "gpu=0"], 2, "--triton-resources"),
    (["--renewal-duration", "4h"], 2, "without --auto-renew"),
    (["--auto-renew-activity-window", "10m"], 2, "without --auto-renew"),
    (["--autoscaling-metric-cpu-utilization-threshold", "0"], 2, "above 0 and at most 100"),
    (["--autoscaling-metric-gpu-utilization-threshold", "100.5"], 2, "above 0 and at most 100"),
    (["--autoscaling-metric-cpu-utilization", "sometimes"], 2, "sometimes"),
    (["--autoscaling-min-replicas", "-1"], 2, "autoscaling-min-replicas"),
    # Disabling the only metric the admin enables leaves nothing to scale on: refused by check.
    (["--autoscaling-metric-gpu-utilization", "disable"], 1, "at least one enabled metric"),
    (["--duration", "forever"], 2, "--duration forever"),
    (["-t", "http://localhost:30345"], 2, "the git repository is the target"),
    (["--triton-resources", "gpus=1"], 2, "use key=value with keys"),
    (["-i", "nvcr.io/nvidia/tritonserver:23.08-py3"], 1, "not on the allowlist"),
    (["-p", "shared_pool", "--quota", "9"], 1, "exceeds the instanceQuota 8"),
    (["--autoscaling-max-replicas", "11"], 1, "11"),
]


@pytest.mark.parametrize("flags, code, message", REFUSALS, ids=[" ".join(c[0]) for c in REFUSALS])
def test_lease_create_refusals(repo: Path, flags: list[str], code: int, message: str) -> None:
    out = tms(repo, "lease", "create", "-m", M, *flags, "--now", NOW, code=code)
    assert message in out
    assert not list((repo / "leases").glob("*.yaml"))


def test_owner_refusal_says_how_to_set_it(repo: Path) -> None:
    (repo / ".tms.yaml").unlink()
    out = tms(repo, "lease", "create", "-m", M, code=2)
    assert "--owner" in out and "TMS_OWNER" in out and ".tms.yaml" in out


def test_generated_names_are_unique_and_printed(repo: Path) -> None:
    names = [tms(repo, "lease", "create", "-m", "name=Model_X.v2,uri=model://volume-models/x").split("\n")[0]
             for _ in range(3)]
    assert names == ["Lease model-x-v2", "Lease model-x-v2-2", "Lease model-x-v2-3"]


def test_porcelain_and_json(repo: Path) -> None:
    import json
    import re

    tms(repo, "lease", "create", "-m", M, "-z")
    tms(repo, "lease", "create", "-m", M, "--enable-autoscaling")
    porcelain = tms(repo, "lease", "list", "-z")
    assert re.findall(r"lease:([^\s]+)", porcelain) == ["my-model", "my-model-2"]
    assert tms(repo, "leases", "-z") == porcelain  # `tmsctl leases`
    rows = json.loads(tms(repo, "lease", "list", "-o", "json"))
    assert [r["lease"] for r in rows] == ["my-model", "my-model-2"]
    status = json.loads(tms(repo, "lease", "status", "my-model", "-o", "json"))
    assert status["state"] == "Unknown" and "State from the files only" in status["note"]
    assert tms(repo, "lease", "status", "my-model", "-z").startswith("lease:my-model state:Unknown ")
    # No state: renewing edits a file; whether the lease is Valid is not known here (issue 25 #3).
    assert tms(repo, "lease", "renew", "my-model", "-z").startswith("lease:my-model expires:")
    assert tms(repo, "lease", "release", "my-model-2", "-z") == "lease:my-model-2 state:Released\n"


def test_lease_names_flags(repo: Path) -> None:
    for n in ("one", "two"):
        tms(repo, "lease", "create", n, "-m", M)
    tms(repo, "lease", "name", "create", "--name", "alias", "--lease", "one")
    assert lease(repo, "one")["spec"]["names"] == ["alias"]
    assert tms(repo, "lease", "name", "list", "-z") == "name:alias lease:one\n"
    tms(repo, "lease", "name", "move", "alias", "--source-lease", "two", "--target-lease", "two", code=1)
    tms(repo, "lease", "name", "move", "--name", "alias", "--source-lease", "one", "--target-lease", "two")
    assert lease(repo, "two")["spec"]["names"] == ["alias"] and "names" not in lease(repo, "one")["spec"]
    tms(repo, "lease", "name", "move", "alias", "one", "--force")
    tms(repo, "lease", "name", "delete", "alias", "two", code=1)  # refers to one, not two
    tms(repo, "lease", "name", "delete", "alias", "two", "--force")
    assert "names" not in lease(repo, "one")["spec"]


def test_pool_flags(repo: Path) -> None:
    import json

    out = tms(repo, "pool", "create", "gpu_a100_pool", "-q", "4", "--disable-backend-uniqueness", "-c", "1,*",
              "--triton-resources", "cpu=8;gpu=1", "--triton-container", "nvcr.io/nvidia/tritonserver:23.09-py3")
    assert out.startswith("Pool gpu_a100_pool\n")
    spec = yaml.safe_load((repo / "pools" / "gpu_a100_pool.yaml").read_text())["spec"]
    assert spec == {"instanceQuota": 4, "instances": {"min": 1, "max": 32}, "backendUniqueness": False,
                    "triton": {"image": "nvcr.io/nvidia/tritonserver:23.09-py3", "resources": {"cpu": 8, "gpu": 1}}}
    tms(repo, "pool", "create", "GPU_A100_POOL", "--instance-quota", "4", code=3)  # exists (case-insensitive)
    tms(repo, "pool", "create", "quota_zero_pool", "-q", "0", code=2)
    tms(repo, "pool", "create", "not_allowed_pool", "-q", "4", "--triton-container",
        "nvcr.io/nvidia/tritonserver:23.08-py3", code=1)
    assert "gpu_a100_pool 4 1..32 0 false" in " ".join(tms(repo, "pool", "list", "-v").split())  # aligned columns
    tms(repo, "lease", "create", "-m", M + ",backend=python", "-p", "gpu_a100_pool", "--quota", "2")
    tms(repo, "pool", "lock", "--no-learn")
    status = json.loads(tms(repo, "pool", "status", "Gpu_A100_Pool", "-v", "-o", "json"))
    assert status["instances"][0]["details"][0]["lease"] == "my-model"
    tms(repo, "pool", "delete", "GPU_A100_pool", code=1)  # used by my-model
    tms(repo, "lease", "release", "my-model")
    assert tms(repo, "pool", "delete", "GPU_A100_pool", "-z") == "pool:gpu_a100_pool state:Deleted\n"


def test_allowlist_flags(repo: Path) -> None:
    image = "nvcr.io/nvidia/tritonserver:23.08-py3"
    assert tms(repo, "allowlist", "add", image, "-z") == f"image:{image} state:Added\n"
    assert tms(repo, "allowlist", "add", image, "-z") == f"image:{image} state:Unchanged\n"  # TMS: no change
    assert tms(repo, "allowlist", "list", "-z").splitlines()[1] == f"image:{image}"
    tms(repo, "allowlist", "add", "not an image", code=2)
    assert tms(repo, "allowlist", "rm", image, "-z") == f"image:{image} state:Removed\n"
    tms(repo, "allowlist", "rm", image, code=1)


def test_share_triton_by_default_pools_a_lease_created_without_triton_options(repo: Path) -> None:
    """Issue 25 #4: byDefault acts where a lease is created, written into its file (`pool:`); a
    lease that exists when the admin turns it on stays where it is."""
    from tms_stack.repo.loader import load_repository
    from tms_stack.repo.lockfile import read_lock

    tms(repo, "lease", "create", "before", "-m", M + ",backend=python")
    limits = repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("  pools:\n    enabled: true\n",
                                                 "  pools:\n    enabled: true\n    byDefault: true\n"
                                                 "    defaultPool: Shared_Pool\n    defaultQuota: 2\n"))
    out = tms(repo, "lease", "create", "-m", M + ",backend=python")
    assert "pools/placement.lock.yaml" in out  # placed, and the lock is part of the commit
    assert lease(repo, "my-model")["spec"]["pool"] == {"name": "Shared_Pool", "quota": 2}  # the file says it
    lock = read_lock(repo)
    assert lock is not None and lock.pools["Shared_Pool"].instances[0].leases == ["my-model"]
    # The lease made before byDefault was turned on keeps its own Triton: policy acts on new leases only.
    assert "pool" not in lease(repo, "before")["spec"]
    assert load_repository(repo).lease("before").spec.pool is None
    # Asking for a Triton of its own is still bespoke.
    tms(repo, "lease", "create", "own", "-m", M, "--triton-resources", "gpu=0")
    assert "own" not in {n for p in read_lock(repo).pools.values() for i in p.instances for n in i.leases}  # type: ignore[union-attr]


NODE_CLASSES = ("  nodeClasses:\n    a100:\n      nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}\n"
                "      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n"
                "    mig-1g:\n      gpuResource: nvidia.com/mig-1g.10gb\n      maxGpus: 7\n")


def test_node_class_flags(repo: Path) -> None:
    """`--node-class` on lease and pool create writes the class; a class the policies do not offer
    is refused before anything is written (exit 2); a pooled lease's class must be its pool's."""
    limits = repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text() + NODE_CLASSES)
    tms(repo, "lease", "create", "big", "-m", M, "--node-class", "a100")
    assert lease(repo, "big")["spec"]["triton"] == {"nodeClass": "a100"}
    out = tms(repo, "lease", "create", "huge", "-m", M, "--node-class", "h100", code=2)
    assert "--node-class 'h100': not a node class of the policies; offered: a100, mig-1g" in out
    assert not (repo / "leases" / "huge.yaml").exists()
    tms(repo, "pool", "create", "Mig_Pool_1g", "-q", "4", "--node-class", "mig-1g")
    pool = yaml.safe_load((repo / "pools" / "Mig_Pool_1g.yaml").read_text())
    assert pool["spec"]["triton"] == {"nodeClass": "mig-1g"}
    tms(repo, "lease", "create", "slice", "-m", M + ",backend=python", "-p", "Mig_Pool_1g", "--quota", "1",
        "--node-class", "mig-1g")
    assert lease(repo, "slice")["spec"]["pool"] == {"name": "Mig_Pool_1g", "quota": 1, "nodeClass": "mig-1g"}
    out = tms(repo, "lease", "create", "wrong", "-m", M + ",backend=python", "-p", "Mig_Pool_1g", "--quota", "1",
              "--node-class", "a100", code=1)
    assert "pool Mig_Pool_1g runs on node class mig-1g, not a100" in out and "[pool.node-class]" in out
    # More MIG slices than a node of the class has: refused by check.
    out = tms(repo, "lease", "create", "greedy", "-m", M, "--node-class", "mig-1g", "--triton-resources", "gpu=8",
              code=1)
    assert "[nodeclass.gpus]" in out
    # byDefault shares the default pool only when it runs on the class asked for.
    limits.write_text(limits.read_text().replace("  pools:\n    enabled: true\n",
                                                 "  pools:\n    enabled: true\n    byDefault: true\n"
                                                 "    defaultPool: Mig_Pool_1g\n"))
    tms(repo, "lease", "create", "sliced", "-m", M + ",backend=python", "--node-class", "mig-1g")
    assert lease(repo, "sliced")["spec"]["pool"] == {"name": "Mig_Pool_1g", "quota": 1, "nodeClass": "mig-1g"}
    tms(repo, "lease", "create", "whole", "-m", M, "--node-class", "a100")
    whole = lease(repo, "whole")["spec"]
    assert "pool" not in whole and whole["triton"] == {"nodeClass": "a100"}  # the default pool is not on a100


def test_a_generated_name_never_overwrites_a_broken_lease_file(repo: Path) -> None:
    (repo / "leases" / "my-model.yaml").write_text("not: [a lease\n")
    assert tms(repo, "lease", "create", "-m", M, code=2).startswith("error: unreadable file leases/my-model.yaml:")
    (repo / "leases" / "my-model.yaml").write_text("apiVersion: tms-stack/v1\nkind: Lease\n")  # schema-invalid
    assert tms(repo, "lease", "create", "-m", M).startswith("Lease my-model-2\n")
    assert (repo / "leases" / "my-model.yaml").read_text() == "apiVersion: tms-stack/v1\nkind: Lease\n"


HOSTILE = ["../etc/passwd", "", "A" * 600, "a\nb", "x y", "-", "лиза", "pool;rm -rf /", "*"]
VERBS = [["lease", "status"], ["lease", "renew"], ["lease", "release"], ["lease", "name", "create", "n"],
         ["lease", "name", "delete", "--force"], ["lease", "name", "move", "--force"], ["pool", "status"],
         ["pool", "delete"], ["pool", "create", "-q", "1"], ["allowlist", "add"], ["allowlist", "rm"],
         ["lease", "create", "-m"]]


@pytest.mark.parametrize("verb", VERBS, ids=[" ".join(v) for v in VERBS])
def test_hostile_arguments_are_refused_with_a_message_never_a_traceback(repo: Path, verb: list[str]) -> None:
    before = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if ".git" not in p.parts)
    for value in HOSTILE:
        result = CliRunner().invoke(app, [*verb, value, "--root", str(repo)])
        assert result.exit_code in (1, 2, 3), (verb, value, result.stdout + result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), (verb, value, repr(result.exception))
        assert "Traceback" not in result.stdout + result.stderr
    after = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if ".git" not in p.parts)
    assert after == before


# The flags of each command's syntax in the tmsctl reference (seed 000, "Triton Management Service
# Control", lines 1828-2520), short forms included. Each must be an option of the `tms` command.
REFERENCE: dict[str, list[str]] = {
    "lease create": ["--target", "-t", "--porcelain", "-z", "--model", "-m", "--duration", "--auto-renew",
                     "--auto-renew-activity-window", "--renewal-duration", "--enable-autoscaling",
                     "--autoscaling-min-replicas", "--autoscaling-max-replicas",
                     "--autoscaling-metric-cpu-utilization", "--autoscaling-metric-cpu-utilization-threshold",
                     "--autoscaling-metric-gpu-utilization", "--autoscaling-metric-gpu-utilization-threshold",
                     "--autoscaling-metric-queue-time", "--autoscaling-metric-queue-time-threshold",
                     "--autoscaling-metric-queue-time-percentage",
                     "--autoscaling-metric-queue-time-percentage-threshold", "--triton-image", "-i",
                     "--triton-resources", "--triton-pool", "-p", "--quota"],
    "lease list": ["--target", "-t", "--porcelain", "-z", "--verbose"],
    "leases": ["--target", "-t", "--porcelain", "-z"],
    "lease release": ["--target", "-t", "--porcelain", "-z"],
    "lease renew": ["--target", "-t", "--porcelain", "-z"],
    "lease status": ["--target", "-t", "--porcelain", "-z"],
    "lease name create": ["--name", "--lease", "--target", "-t", "--porcelain", "-z"],
    "lease name delete": ["--name", "--lease", "--force", "--target", "-t", "--porcelain", "-z"],
    "lease name list": ["--target", "-t", "--porcelain", "-z"],
    "lease name move": ["--name", "--source-lease", "--force", "--target-lease", "--target", "-t", "--porcelain",
                        "-z"],
    "pool create": ["--instance-quota", "-q", "--disable-backend-uniqueness", "--instances", "-c",
                    "--triton-resources", "--triton-container", "--target", "-t", "--porcelain", "-z"],
    "pool delete": ["--target", "-t", "--porcelain", "-z"],
    "pool list": ["--verbose", "-v", "--target", "-t", "--porcelain", "-z"],
    "pool status": ["--verbose", "-v", "--target", "-t", "--porcelain", "-z"],
    "allowlist add": ["--target", "-t", "--porcelain", "-z"],
    "allowlist list": ["--target", "-t", "--porcelain", "-z"],
    "allowlist rm": ["--target", "-t", "--porcelain", "-z"],
}


@pytest.mark.parametrize("command", sorted(REFERENCE))
def test_every_flag_of_the_reference_is_an_option(command: str) -> None:
    import typer

    cmd: Any = typer.main.get_command(app)
    for word in command.split():
        cmd = cmd.commands[word]
    options = {o for p in cmd.params for o in getattr(p, "opts", [])}
    missing = [f for f in REFERENCE[command] if f not in options]
    assert not missing, (command, missing)
    # ... and a row of docs/tmsctl.md's tables names the command.
    import re

    doc = (ROOT / "docs" / "tmsctl.md").read_text()
    assert re.search(rf"(?m)^\| [^|\n]*`{re.escape(command)}[` \[]", doc), command
