"""docs/admin-setup.md is the one checklist (issue 14: the Secrets an admin must create were spread
over three documents). Every Secret and claim the rendered pods of the fixture mount, or the
policies and stack name, is traced to the setting that names it, and each such setting is a row
of the checklist's Secrets table; a new setting that makes pods mount something fails here until
the checklist says how to create it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import NOW, ROOT, copy_example
from tms_stack.commands.doctor.cluster import references
from tms_stack.render import render_repository
from tms_stack.repo.loader import load_repository
from tms_stack.repo.lockfile import read_lock
from tms_stack.repo.stack import load_stack_settings

DOC = ROOT / "docs" / "admin-setup.md"


def _secrets_table() -> str:
    text = DOC.read_text()
    return text.split("## 7. Secrets and claims", 1)[1].split("\n## ", 1)[0]


def test_every_secret_and_claim_the_pods_mount_has_a_row(tmp_path: Path) -> None:
    repo_dir = copy_example(tmp_path / "fleet")
    repo = load_repository(repo_dir)
    settings = load_stack_settings(repo_dir)
    objects = [o for g in render_repository(repo, settings, read_lock(repo_dir), NOW) for o in g.objects]
    refs = references(objects, repo, settings)
    assert refs["secrets"] and refs["claims"], refs  # the fixture exercises both

    spec = repo.repositories.spec
    named_by: dict[str, str] = {}
    for s3 in spec.s3:
        named_by.update({s3.accessKey: "accessKey", s3.secretKey: "secretKey"} if s3.accessKey else {})
    named_by.update({h.secretName: "secretName" for h in spec.https})
    named_by.update({s: "imagePullSecrets" for s in settings.imagePullSecrets})
    named_by.update({v.volumeClaimName: "volumeClaimName" for v in spec.volumes})
    untraced = (refs["secrets"] | refs["claims"]) - set(named_by)
    assert not untraced, f"mounted but named by no setting the checklist knows: {sorted(untraced)}"
    table = _secrets_table()
    for setting in sorted(set(named_by.values())):
        assert f"`{setting}`" in table or f"{setting}`" in table, setting
    # Each row says how to create it.
    assert table.count("kubectl -n NS create secret") >= 3 and "PersistentVolumeClaim" in table


def test_the_checklist_covers_what_the_issue_found_missing() -> None:
    text = DOC.read_text()
    for needed in ("kubectl create namespace", "Branch protection", "tms doctor", "agentImage",
                   "pulumi stack init", "PULUMI_STACK"):
        assert needed in text, needed


def test_the_alertmanager_example_routes_on_labels_every_alert_carries() -> None:
    """docs/admin-setup.md's route per owner (issue 25): it parses, routes on `owner` for each team,
    and every label it matches or groups by is one each alert of the PrometheusRule keeps."""
    import re

    import yaml

    from tms_stack.render.monitoring import ALERT_RULES

    section = DOC.read_text().split("## 12. Alerts to the owning team", 1)[1]
    config = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    receivers = {r["name"] for r in config["receivers"]}
    kept = {"owner", "lease", "namespace", "alertname", "severity"}
    for rule in ALERT_RULES:
        for group in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {"owner", "lease"} <= {g.strip() for g in group.split(",")}

    def walk(route: dict) -> list[str]:
        assert route["receiver"] in receivers, route
        labels = [m.split("=", 1)[0] for m in route.get("matchers", [])]
        for child in route.get("routes", []):
            labels += walk(child)
        return labels

    matched = walk(config["route"])
    assert matched.count("owner") >= 2 and set(matched) <= kept, matched
    assert set(config["route"]["group_by"]) <= kept
