"""The GitHub workflows pass actionlint (built from Go modules by scripts/deps.d/40-actionlint.sh);
test_workflow_invariants.py checks what actionlint cannot (pins, permissions, secrets, order)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT

ACTIONLINT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tms-stack" / "bin" / \
    "actionlint-v1.7.7" / "actionlint"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    if not ACTIONLINT.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "deps.d" / "40-actionlint.sh")], check=True)
    return str(ACTIONLINT)


def test_workflows_pass_actionlint() -> None:
    assert {p.name for p in WORKFLOWS} == {"review.yml", "review-comment.yml", "deploy.yml", "prune.yml",
                                           "agent-image.yml", "release.yml"}
    out = subprocess.run([_actionlint(), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((ROOT / ".github" / "workflows" / "prune.yml").read_text()
                      .replace("steps.prune.outputs.changed", "steps.prnue.outputs.changed"))
    assert subprocess.run([_actionlint(), str(broken)], capture_output=True).returncode != 0


def test_workflows_do_what_the_design_says() -> None:
    flows = {p.stem: yaml.safe_load(p.read_text()) for p in WORKFLOWS}
    review = yaml.safe_dump(flows["review"], width=1000)
    assert "./base/scripts/trusted-review.sh base pr review" in review
    preview = next(s for s in flows["review"]["jobs"]["preview"]["steps"] if s.get("name") == "pulumi preview")["run"]
    assert 'pulumi preview --stack "$s" --config-file "Pulumi.$STACK.yaml"' in preview  # every stack of a fleet
    assert "make test" in review
    assert "name: tms-plan" in review and "name: tms-plan" in yaml.safe_dump(flows["review-comment"])
    deploy = next(j for j in flows["deploy"]["jobs"]["up"]["steps"] if j.get("name") == "pulumi up")["run"]
    assert "pulumi up \"$@\"" in deploy and "up_stack \"$s\" --yes --skip-preview --refresh" in deploy
    assert "tms shard moves --stack \"$STACK\" --run" in deploy  # sharded fleets: moves before any up
    prune = flows["prune"]
    assert prune[True]["schedule"]  # `on:` reads as True in YAML 1.1
    text = yaml.safe_dump(prune)
    assert "tms prune" in text and "git push" in text and "gh pr create" in text
