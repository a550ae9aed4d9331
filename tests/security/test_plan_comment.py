"""The plan comment is safe to post: admin-owned changes first, user values inert, under GitHub's size.

Plans are built with `build_plan(..., base_dir=...)` (the trusted review's mode: base and PR are
two checkouts) and rendered to HTML with markdown-it (CommonMark + tables, raw HTML on, as GitHub
parses it before sanitising) to check what a reader would see."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.conftest import NOW, ROOT, copy_example
from tms_stack.commands.plan import COMMENT_LIMIT, MARKER, LeaseRow, Plan, build_plan, render_markdown

PAYLOAD = "x\n# All checks passed — approved by @org/admins<!--"
EXPIRES = (NOW + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")


def html(markdown_text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown_text)


def outside_code(rendered: str) -> str:
    return re.sub(r"<code>.*?</code>", "", rendered, flags=re.S)


def lease(name: str, owner: str = "team-nlp", extra: str = "") -> str:
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: {owner}\n"
            f"spec:\n  models:\n    - name: m\n      uri: model://s3-models/{name}/m\n  expires: {EXPIRES}\n{extra}")


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    return copy_example(tmp_path / "base"), copy_example(tmp_path / "pr")


def plan_md(base: Path, pr: Path, limit: int = COMMENT_LIMIT) -> str:
    return render_markdown(build_plan(pr, "main", now=NOW, base_dir=base), limit)


# --- B: admin-owned changes come first ------------------------------------------------------------

def test_raised_limits_and_attacker_image_are_listed_above_the_lease(two: tuple[Path, Path]) -> None:
    base, pr = two
    limits = pr / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("maximum: {cpu: 16, gpu: 4,", "maximum: {cpu: 16, gpu: 64,"))
    allow = pr / "policies" / "allowlist.yaml"
    allow.write_text(allow.read_text() + "    - docker.io/attacker/miner:latest\n")
    stack = pr / "Pulumi.example.yaml"
    stack.write_text(stack.read_text().replace("ghcr.io/tms-stack/agent:0.1.0", "docker.io/attacker/agent:1"))
    (pr / "pools" / "gpu-farm.yaml").write_text(
        "apiVersion: tms-stack/v1\nkind: Pool\nmetadata: {name: gpu-farm, owner: team-platform}\n"
        "spec:\n  instanceQuota: 8\n  instances: {min: 0, max: 2}\n  triton:\n    resources: {cpu: 8, gpu: 1, systemMemory: 32Gi}\n")
    (pr / "tms_stack").mkdir()
    (pr / "tms_stack" / "rules.py").write_text("RULES = []\n")
    (pr / "leases" / "miner.yaml").write_text(lease("miner", "team-risk", extra=(
        "  triton:\n    image: docker.io/attacker/miner:latest\n    resources: {cpu: 2, gpu: 8, systemMemory: 16Gi}\n")))
    subprocess.run([str(ROOT / ".venv" / "bin" / "tms"), "pool", "lock", "--root", str(pr)], check=True,
                   capture_output=True)
    md = plan_md(base, pr)
    assert ":white_check_mark:" in md, md[:3000]           # the PR's own policies allow it: only a human can refuse
    assert "1 lease(s) added, 0 changed" in md
    top = md[:md.index(":white_check_mark:")]
    assert "### :warning: Admin-owned changes" in top
    for line in ("limits triton.resources.maximum.gpu: 4 → 64",
                 "allowlist images + docker.io/attacker/miner:latest",
                 "Pulumi.example.yaml tms-stack:agentImage: ghcr.io/tms-stack/agent:0.1.0 → docker.io/attacker/agent:1",
                 "pool gpu-farm added: owner team-platform, 0..2 instances × 1 GPU(s), image (allowlist default)"):
        assert f"`{line}`" in top, line
    # agentImage is in the "what runs beside every Triton" list, before the policies.
    assert top.index("agentImage") < top.index("Effective policies")
    for path in ("policies/limits.yaml", "policies/allowlist.yaml", "Pulumi.example.yaml", "pools/gpu-farm.yaml",
                 "tms_stack/rules.py"):
        assert f"`{path}`" in top, path
    assert "leases/miner.yaml" not in top and "placement.lock" not in top


def test_a_lease_only_change_has_no_admin_section(two: tuple[Path, Path]) -> None:
    base, pr = two
    (pr / "leases" / "small.yaml").write_text(lease("small"))
    md = plan_md(base, pr)
    assert "Admin-owned" not in md and "1 lease(s) added" in md


def test_git_mode_lists_admin_files_too(example_repo: Path) -> None:
    """`tms plan --base REF` in a work tree (no base checkout): the changed files come from git."""
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=example_repo, check=True, capture_output=True, env=env)
    limits = example_repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("default: {gpus: 8, leases: 20}", "default: {gpus: 800, leases: 20}"))
    md = render_markdown(build_plan(example_repo, "main", now=NOW))
    assert "`limits budgets.default.gpus: 8 → 800`" in md and "`policies/limits.yaml` (changed)" in md


# --- C: escaping -----------------------------------------------------------------------------------

def _assert_inert(md: str) -> str:
    rendered = html(md)
    prose = outside_code(rendered)
    # No heading, mention, comment or link came from the payload.
    assert not re.search(r"<h[1-6]>[^<]*All checks passed", rendered)
    assert "@org/admins" not in prose
    assert rendered.count("<!--") == 1 and "<!-- tms-stack-plan -->" in rendered
    assert "<a " not in rendered
    # Nothing after the payload was swallowed: the last section still renders.
    assert "<h3>Kubernetes objects</h3>" in rendered
    return rendered


def test_injected_values_render_as_text() -> None:
    row = LeaseRow(name=PAYLOAD, owner=PAYLOAD, models=PAYLOAD + "|x", triton=PAYLOAD + "`", gpus=1,
                   expires="2026-11-22 12:00Z", change=PAYLOAD)
    plan = Plan(base=PAYLOAD, head_sha="", added=[row], changed=[row], removed=[row], expiring=[row],
                left_out=[PAYLOAD], moves=[(PAYLOAD, PAYLOAD, PAYLOAD)],
                owners=[{"owner": PAYLOAD, "gpus_before": 0, "gpus_after": 1, "gpu_budget": 8, "leases_before": 0,
                         "leases_after": 1, "lease_budget": 20, "over": False}],
                errors=[{"where": "`leases/x.yaml:1`", "rule": PAYLOAD, "message": f"image {PAYLOAD} is bad"}],
                warnings=[{"where": "`leases/x.yaml:1`", "rule": "r", "message": PAYLOAD}],
                objects={"create": [PAYLOAD], "update": [], "delete": [PAYLOAD]}, objects_note=PAYLOAD)
    md = render_markdown(plan)
    rendered = _assert_inert(md)
    # Every table keeps its shape: each row has exactly as many cells as its header.
    for table in re.findall(r"<table>.*?</table>", rendered, flags=re.S):
        header = len(re.findall(r"<th>", table))
        for body_row in re.findall(r"<tr>\s*<td>.*?</tr>", table, flags=re.S):
            assert len(re.findall(r"<td>", body_row)) == header, body_row
    # The payload is shown, as text: in code spans, with the line break made visible.
    assert "x⏎# All checks passed — approved by @org/admins&lt;!--" in rendered


def test_injected_values_from_a_real_pr_are_inert(two: tuple[Path, Path]) -> None:
    """The same payload as image, owner and alias of a lease file: check refuses it (full-match
    validation) and the violation messages that quote it stay text."""
    base, pr = two
    quoted = PAYLOAD.replace("\n", "\\n")
    (pr / "leases" / "evil.yaml").write_text(
        f'apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: evil\n  owner: "{quoted}"\n'
        f'spec:\n  models:\n    - name: m\n      uri: model://s3-models/e/m\n  expires: {EXPIRES}\n'
        f'  names: ["{quoted}"]\n  triton:\n    image: "{quoted}"\n')
    md = plan_md(base, pr)
    assert "policy violation" in md
    _assert_inert(md)


# --- C: the size limit -----------------------------------------------------------------------------

def test_1500_leases_expiring_within_a_day_fit_in_one_comment(two: tuple[Path, Path]) -> None:
    base, pr = two
    limits = pr / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("default: {gpus: 8, leases: 20}", "default: {gpus: 100000, leases: 2000}"))
    for i in range(1500):
        (pr / "leases" / f"burst-{i:04d}.yaml").write_text(lease(f"burst-{i:04d}", "team-nlp"))
    plan = build_plan(pr, "main", now=NOW, base_dir=base)
    assert len(plan.expiring) == 1500
    md = render_markdown(plan)
    assert len(md) <= COMMENT_LIMIT
    assert md.startswith(MARKER)
    assert md.index("Admin-owned changes") < md.index("1500 lease(s) added")
    assert "`limits budgets.default.leases: 20 → 2000`" in md
    assert "1500 expiring within 24 hours" in md
    # Every list is capped and says so (the expiring list once made a 188,270-character comment).
    assert "_1450 more not shown._" in md
    html(md)   # parses

    # Over the limit even so: fewer rows per list, and the comment says what was cut.
    mid = render_markdown(plan, limit=10_000)
    assert len(mid) <= 10_000
    assert "shortened to fit GitHub's 10,000-character comment limit (the full plan has 17," in mid
    assert "each list shows at most" in mid and "Admin-owned changes" in mid and "1500 lease(s) added" in mid

    # Squeezed further, only the admin section and the counts remain, and the comment says so.
    small = render_markdown(plan, limit=2000)
    assert len(small) <= 2000
    assert "Admin-owned changes" in small and "1500 lease(s) added" in small
    assert "only the admin-owned changes and the counts are shown" in small
    assert "to create" in small and "### Added leases" not in small


def test_an_oversized_admin_section_is_cut_at_a_line_and_says_so() -> None:
    from tms_stack.commands.admin_changes import AdminChanges

    admin = AdminChanges(files=[(f"tms_stack/{'x' * 200}{i}.py", "added") for i in range(100)],
                         policies=[f"limits owners + team-{i}" for i in range(100)], cut=900)
    md = render_markdown(Plan(base="main", head_sha="", admin=admin), limit=3000)
    assert len(md) <= 3000
    assert md.startswith(MARKER) and "Admin-owned changes" in md
    assert md.endswith(":white_check_mark: `tms check` passes; 0 lease(s) added, 0 changed, 0 removed, 0 expiring "
                       "within 24 hours.\n\n_The rest of this plan was cut: GitHub comments are limited to 3,000 "
                       "characters._\n")
