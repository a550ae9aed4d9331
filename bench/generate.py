"""A synthetic repository of N leases and P pools (all valid), shared by the benchmarks."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def generate(dest: Path, leases: int = 10_000, pools: int = 50, seed: int = 7) -> Path:
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "leases").mkdir(parents=True)
    (dest / "pools").mkdir()
    # The test fixture's policies, never the root's: those belong to the team that forked the template.
    shutil.copytree(ROOT / "tests" / "fixtures" / "example" / "policies", dest / "policies")
    limits = dest / "policies" / "limits.yaml"
    # Budgets sized for a big fleet; everything else is the example's policy.
    limits.write_text(limits.read_text().replace("default: {gpus: 8, leases: 20}", "default: {gpus: 100000, leases: 100000}")
                      .replace("maxInstances: 8", "maxInstances: 1000")
                      .replace("team-platform: {gpus: 32,", "team-platform: {gpus: 100000,"))
    # The generated owners (team-00..96, pools: team-platform) are declared like any team's.
    text = limits.read_text()
    owners = ", ".join([*(f"team-{o:02d}" for o in range(97)), "team-platform", "team-risk"])
    limits.write_text(text[:text.index("\n  owners: [")] + f"\n  owners: [{owners}]\n")
    for p in range(pools):
        (dest / "pools" / f"bench-pool-{p:03d}.yaml").write_text(
            "apiVersion: tms-stack/v1\nkind: Pool\n"
            f"metadata:\n  name: bench-pool-{p:03d}\n  owner: team-platform\n"
            "spec:\n  instanceQuota: 8\n  instances: {min: 1, max: 1000}\n  backendUniqueness: true\n"
            "  triton:\n    resources: {cpu: 8, gpu: 1, systemMemory: 32Gi, sharedMemory: 1Gi}\n")
    for i in range(leases):
        name = f"lease-{i:05d}"
        owner = f"team-{i % 97:02d}"
        kind = i % 3
        head = (f"# lease {i}\napiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: {owner}\n"
                "spec:\n  models:\n"
                f"    - name: pre_{i}\n      uri: model://s3-models/bench/{i}/pre\n      backends: [python]\n"
                f"    - name: main_{i}\n      uri: https://models.example.com/private/{i}.zip\n      backends: [python]\n"
                f"  expires: 2027-0{1 + i % 9}-15T12:00:00Z\n  names: [alias-{i:05d}]\n")
        if kind == 0:
            body = (f"  triton:\n    resources: {{cpu: {rng.randint(1, 8)}, gpu: {rng.randint(0, 2)}, systemMemory: 8Gi}}\n")
        elif kind == 1:
            body = ("  triton:\n    resources: {cpu: 4, gpu: 1}\n    autoscaling:\n      maxReplicas: 3\n"
                    "      metrics:\n        queueTime: {enabled: true, threshold: 200ms}\n")
        else:
            body = f"  pool: {{name: bench-pool-{rng.randrange(pools):03d}, quota: {rng.randint(1, 8)}}}\n"
        (dest / "leases" / f"{name}.yaml").write_text(head + body)
    return dest
