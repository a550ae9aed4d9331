"""The workflows are right by construction (issue 13 item 8, issue 10 item 5): a parse of every
workflow (this repository's and the ones `tms init` writes) against the invariants the docs
promise, and for each invariant a broken copy that it must catch (a check that cannot fail
proves nothing).

- deploy follows every push prune makes (prune calls deploy.yml; a push made with github.token
  starts no workflow), and prune's PR mode never opens a pull request with github.token;
- deploy runs on push, on a schedule and when called, one at a time, after `tms check`;
- a kubeconfig is written before every pulumi step;
- review runs on `merge_group` as well as `pull_request`;
- least privilege: `permissions: {}` at the top, every job says what it needs, and the only write
  scopes are the ones that are needed (prune pushes, the comment job comments, agent-image
  publishes, release attaches files, publishes the image and gets PyPI's OIDC token);
- no secret, no write token and no persisted credentials in a job that runs the PR's code; a
  job that reads the PR only as data keeps it under pr/ and never runs anything from there;
  a `workflow_run` workflow (write token) checks out nothing;
- every `uses:` is pinned to a 40-hex commit with its version in a comment;
- the schedules are the ones docs/lifecycle.md's expiry guarantee assumes;
- prune has a total bound: its job's `timeout-minutes` ends a run before the next one is due.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

Flows = dict[str, dict[str, Any]]
Texts = dict[str, str]

WORKFLOW_DIRS = {"repository": ROOT / ".github" / "workflows",
                 "scaffold": ROOT / "tms_stack" / "commands" / "scaffold" / "derived" / "workflows"}
PR_EVENTS = {"pull_request", "merge_group", "pull_request_target"}
# (workflow, job) -> the write scopes it may hold. Anything else with `write` fails.
ALLOWED_WRITES = {("prune", "prune"): {"contents"}, ("review-comment", "comment"): {"pull-requests"},
                  ("agent-image", "publish"): {"packages"},
                  # release.yml: the image (through agent-image.yml), the GitHub release's files, and
                  # PyPI's trusted publishing (an OIDC token; no stored secret)
                  ("release", "agent-image"): {"packages"}, ("release", "github-release"): {"contents"},
                  ("release", "pypi"): {"id-token"}}
DEPLOY = "./.github/workflows/deploy.yml"


def load(folder: Path) -> tuple[Flows, Texts]:
    texts = {p.stem: p.read_text() for p in sorted(folder.glob("*.yml"))}
    return {name: yaml.safe_load(text) for name, text in texts.items()}, texts


def triggers(flow: dict[str, Any]) -> dict[str, Any]:
    on = flow.get("on", flow.get(True))  # `on:` reads as True in YAML 1.1
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def is_checkout(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("actions/checkout@")


def is_pulumi(step: dict[str, Any]) -> bool:
    return (str(step.get("uses", "")).startswith("pulumi/actions@")
            or bool(re.search(r"(?m)(^|[\s;&|(])pulumi\s", str(step.get("run", "")))))


def writes_kubeconfig(step: dict[str, Any]) -> bool:
    env = " ".join(str(v) for v in (step.get("env") or {}).values())
    run = str(step.get("run", ""))
    return "secrets.KUBECONFIG" in env and bool(re.search(r">\s*(~/\.kube/config|\"?\$KUBECONFIG\"?)", run))


def dump(node: Any) -> str:
    return yaml.safe_dump(node, sort_keys=True)


# --- the invariants: each returns what is wrong (empty: holds) -------------------------------------

def deploy_follows_prune(flows: Flows, texts: Texts) -> list[str]:
    bad: list[str] = []
    if "workflow_call" not in triggers(flows.get("deploy", {})):
        bad.append("deploy: no workflow_call trigger: prune cannot call it")
    prune = flows.get("prune", {})
    jobs = prune.get("jobs", {})
    for job_id, job in jobs.items():
        for step in steps(job):
            run = str(step.get("run", ""))
            if re.search(r"\bgh pr create\b", run):
                token = str((step.get("env") or {}).get("GH_TOKEN", ""))
                if "secrets.PRUNE_TOKEN" not in token or "github.token" in token:
                    bad.append(f"prune.{job_id}: a pull request opened with {token or 'no token'} gets no checks")
                guard = [s for s in steps(job) if "PRUNE_TOKEN" in dump(s) and "exit 1" in str(s.get("run", ""))]
                if not guard:
                    bad.append(f"prune.{job_id}: PR mode does not fail loudly without PRUNE_TOKEN")
            for push in re.finditer(r"\bgit push\b[^\n]*", run):
                if re.search(r"HEAD:main\b|^git push\s*$", push.group(0)):
                    bad += _deploy_called_after(jobs, job_id, job, step)
    return bad


def _deploy_called_after(jobs: dict[str, Any], job_id: str, job: dict[str, Any],
                         step: dict[str, Any]) -> list[str]:
    step_id = step.get("id")
    if not step_id or "pushed=true" not in str(step.get("run", "")):
        return [f"prune.{job_id}: the step that pushes to main does not say so (id + pushed=true)"]
    outputs = {k: v for k, v in (job.get("outputs") or {}).items() if f"steps.{step_id}.outputs.pushed" in str(v)}
    if not outputs:
        return [f"prune.{job_id}: job outputs do not expose steps.{step_id}.outputs.pushed"]
    for caller in jobs.values():
        needs = caller.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        if (caller.get("uses") == DEPLOY and job_id in needs and caller.get("secrets") == "inherit"
                and any(f"needs.{job_id}.outputs.{o}" in str(caller.get("if", "")) for o in outputs)):
            return []
    return [f"prune.{job_id}: no job calls {DEPLOY} (secrets: inherit) after its push to main"]


def deploy_is_a_reconciling_gate(flows: Flows, texts: Texts) -> list[str]:
    if "deploy" not in flows:
        return ["no deploy workflow"]
    bad = []
    on = triggers(flows["deploy"])
    for event in ("push", "schedule", "workflow_dispatch", "workflow_call"):
        if event not in on:
            bad.append(f"deploy: no {event} trigger")
    for job_id, job in flows["deploy"]["jobs"].items():
        group = (job.get("concurrency") or {}).get("group") if isinstance(job.get("concurrency"), dict) \
            else job.get("concurrency")
        if not group:
            bad.append(f"deploy.{job_id}: no concurrency group (two deploys at once)")
        check = [i for i, s in enumerate(steps(job)) if re.search(r"tms check\b", str(s.get("run", "")))]
        pulumi = [i for i, s in enumerate(steps(job)) if is_pulumi(s)]
        if pulumi and (not check or check[0] > pulumi[0]):
            bad.append(f"deploy.{job_id}: pulumi runs without `tms check` before it")
    return bad


def kubeconfig_before_pulumi(flows: Flows, texts: Texts) -> list[str]:
    bad = []
    for name, flow in flows.items():
        for job_id, job in flow.get("jobs", {}).items():
            written = False
            for i, step in enumerate(steps(job)):
                written = written or writes_kubeconfig(step)
                if is_pulumi(step) and not written:
                    bad.append(f"{name}.{job_id}: step {i + 1} runs pulumi before a kubeconfig is written")
    return bad


def review_checks_merged_results(flows: Flows, texts: Texts) -> list[str]:
    on = triggers(flows.get("review", {}))
    return [f"review: no {e} trigger" for e in ("pull_request", "merge_group") if e not in on]


def least_privilege(flows: Flows, texts: Texts) -> list[str]:
    bad = []
    for name, flow in flows.items():
        if flow.get("permissions") != {}:
            bad.append(f"{name}: top-level permissions are {flow.get('permissions')!r}, not {{}}")
        pr_triggered = bool(PR_EVENTS & set(triggers(flow)))
        for job_id, job in flow.get("jobs", {}).items():
            perms = job.get("permissions")
            if not isinstance(perms, dict):
                bad.append(f"{name}.{job_id}: permissions {perms!r}: say per scope what the job needs")
                continue
            writes = {scope for scope, level in perms.items() if level == "write"}
            if pr_triggered and writes:
                bad.append(f"{name}.{job_id}: {sorted(writes)} write on a pull-request trigger")
            extra = writes - ALLOWED_WRITES.get((name, job_id), set())
            if extra:
                bad.append(f"{name}.{job_id}: write access it does not need: {sorted(extra)}")
    return bad


def _runs_pr_code(job: dict[str, Any]) -> bool:
    """Checks out the PR outside pr/ (where steps run), or runs something from pr/."""
    for step in steps(job):
        ref = str((step.get("with") or {}).get("ref", ""))
        if is_checkout(step) and not re.search(r"base\.sha|base_sha", ref) \
                and (step.get("with") or {}).get("path") != "pr":
            return True
        if str(step.get("working-directory", "")).startswith(("pr", "./pr")):
            return True
        for command in re.split(r"[;&|\n()]+", str(step.get("run", ""))):
            words = command.split()
            if words and words[0] in ("bash", "sh", "python", "python3", "source", ".", "exec"):
                words = words[1:]
            if words and re.match(r"^\"?(\./)?pr/", words[0]):
                return True
    return False


def no_secrets_with_pr_code(flows: Flows, texts: Texts) -> list[str]:
    bad = []
    for name, flow in flows.items():
        on = set(triggers(flow))
        for job_id, job in flow.get("jobs", {}).items():
            if "workflow_run" in on and any(is_checkout(s) for s in steps(job)):
                bad.append(f"{name}.{job_id}: a workflow_run job (write token) checks out code")
            if not on & PR_EVENTS:
                continue
            for i, step in enumerate(steps(job)):
                if is_checkout(step) and (step.get("with") or {}).get("persist-credentials") is not False:
                    bad.append(f"{name}.{job_id}: checkout {i + 1} leaves the token in .git (persist-credentials)")
            if not _runs_pr_code(job):
                continue
            secrets = sorted(set(re.findall(r"secrets\.(\w+)", dump(job))) - {"GITHUB_TOKEN"})
            if secrets or job.get("secrets") or job.get("environment"):
                bad.append(f"{name}.{job_id}: runs the PR's code with secrets {secrets or job.get('environment')}")
    return bad


USES = re.compile(r"(?m)^\s*(?:- )?uses:\s*(\S+)(.*)$")


def pinned_by_sha(flows: Flows, texts: Texts) -> list[str]:
    bad = []
    for name, text in texts.items():
        for m in USES.finditer(text):
            ref, rest = m.group(1), m.group(2)
            if ref.startswith("./"):
                continue
            if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref):
                bad.append(f"{name}: {ref} is not pinned to a commit")
            elif not re.fullmatch(r"\s*#\s*v\d+(\.\d+)*\S*\s*", rest):
                bad.append(f"{name}: {ref} has no `# vX.Y.Z` comment")
    return bad


def _cron_minutes(cron: str) -> int:
    minute, hour, *_ = cron.split()
    if minute.startswith("*/") and hour == "*":
        return int(minute[2:])
    if minute.isdigit() and hour == "*":
        return 60
    raise ValueError(f"cron {cron!r}: not an every-N-minutes or hourly schedule")


def schedules_match_the_guarantee(flows: Flows, texts: Texts) -> list[str]:
    doc = (ROOT / "docs" / "lifecycle.md").read_text()
    bad = []
    for name, phrase in (("prune", "prune every {} minutes"), ("deploy", "reconcile (scheduled deploy) every {}")):
        crons = [c["cron"] for c in triggers(flows.get(name, {})).get("schedule") or []]
        if len(crons) != 1:
            bad.append(f"{name}: {len(crons)} schedules, want one")
            continue
        minutes = _cron_minutes(crons[0])
        said = phrase.format("hour" if minutes == 60 else minutes)
        if said not in doc:
            bad.append(f"{name}: runs every {minutes} min but docs/lifecycle.md does not say **{said}**")
    return bad


def prune_is_bounded(flows: Flows, texts: Texts) -> list[str]:
    """Issue 22: a Prometheus that never answers must not hold prune (and its concurrency group)."""
    crons = [c["cron"] for c in triggers(flows.get("prune", {})).get("schedule") or []]
    every = min((_cron_minutes(c) for c in crons), default=60)
    bad = []
    for job_id, job in (flows.get("prune", {}).get("jobs") or {}).items():
        if "uses" in job:
            continue  # the called deploy has its own timeout
        limit = job.get("timeout-minutes")
        if not isinstance(limit, int) or not 0 < limit < every:
            bad.append(f"prune.{job_id}: timeout-minutes {limit!r}, want a number below the {every}-minute schedule")
    return bad


INVARIANTS: list[Callable[[Flows, Texts], list[str]]] = [
    deploy_follows_prune, deploy_is_a_reconciling_gate, kubeconfig_before_pulumi, review_checks_merged_results,
    least_privilege, no_secrets_with_pr_code, pinned_by_sha, schedules_match_the_guarantee, prune_is_bounded]


@pytest.mark.parametrize("where", sorted(WORKFLOW_DIRS))
@pytest.mark.parametrize("invariant", INVARIANTS, ids=lambda f: f.__name__)
def test_invariant_holds(where: str, invariant: Callable[[Flows, Texts], list[str]]) -> None:
    flows, texts = load(WORKFLOW_DIRS[where])
    assert {"review", "review-comment", "deploy", "prune"} <= set(flows)
    assert invariant(flows, texts) == []


def test_the_repository_has_the_agent_image_workflow_and_the_fleet_does_not() -> None:
    assert "agent-image" in load(WORKFLOW_DIRS["repository"])[0]
    assert "agent-image" not in load(WORKFLOW_DIRS["scaffold"])[0]
    job = load(WORKFLOW_DIRS["repository"])[0]["agent-image"]["jobs"]["publish"]
    run = " ".join(str(s.get("run", "")) for s in steps(job))
    assert "pyproject.toml" in run and '["project"]["version"]' in run and "ghcr.io/" in run
    assert any(str(s.get("uses", "")).startswith("docker/build-push-action@")
               and s["with"]["file"] == "docker/agent.Dockerfile" for s in steps(job))


# --- broken copies: every invariant catches its breakage ------------------------------------------

def _job(flows: Flows, name: str, job: str) -> dict[str, Any]:
    return flows[name]["jobs"][job]


def _step(flows: Flows, name: str, job: str, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(s for s in steps(_job(flows, name, job)) if pred(s))


def _drop_prune_deploy(f: Flows, t: Texts) -> None:
    del f["prune"]["jobs"]["deploy"]


def _no_inherit(f: Flows, t: Texts) -> None:
    del f["prune"]["jobs"]["deploy"]["secrets"]


def _no_workflow_call(f: Flows, t: Texts) -> None:
    f["deploy"][True].pop("workflow_call")


def _pr_mode_default_token(f: Flows, t: Texts) -> None:
    _step(f, "prune", "prune", lambda s: "gh pr create" in str(s.get("run", "")))["env"]["GH_TOKEN"] = \
        "${{ secrets.PRUNE_TOKEN || github.token }}"


def _pr_mode_no_guard(f: Flows, t: Texts) -> None:
    job = _job(f, "prune", "prune")
    job["steps"] = [s for s in steps(job) if "HAS_PRUNE_TOKEN" not in dump(s)]


def _push_without_output(f: Flows, t: Texts) -> None:
    step = _step(f, "prune", "prune", lambda s: "git push origin HEAD:main" in str(s.get("run", "")))
    step["run"] = step["run"].replace('echo "pushed=true" >> "$GITHUB_OUTPUT"', "true")


def _deploy_no_schedule(f: Flows, t: Texts) -> None:
    f["deploy"][True].pop("schedule")


def _deploy_no_concurrency(f: Flows, t: Texts) -> None:
    _job(f, "deploy", "up").pop("concurrency")


def _deploy_no_check(f: Flows, t: Texts) -> None:
    job = _job(f, "deploy", "up")
    job["steps"] = [s for s in steps(job) if "tms check" not in str(s.get("run", ""))]


def _kubeconfig_after_pulumi(f: Flows, t: Texts) -> None:
    job = _job(f, "deploy", "up")
    kube = next(s for s in steps(job) if writes_kubeconfig(s))
    job["steps"] = [s for s in steps(job) if s is not kube] + [kube]


def _preview_without_kubeconfig(f: Flows, t: Texts) -> None:
    job = _job(f, "review", "preview")
    job["steps"] = [s for s in steps(job) if not writes_kubeconfig(s)]


def _no_merge_group(f: Flows, t: Texts) -> None:
    f["review"][True].pop("merge_group")


def _top_level_write_all(f: Flows, t: Texts) -> None:
    f["deploy"]["permissions"] = "write-all"


def _check_job_writes(f: Flows, t: Texts) -> None:
    _job(f, "review", "check")["permissions"]["pull-requests"] = "write"


def _deploy_packages(f: Flows, t: Texts) -> None:
    _job(f, "deploy", "up")["permissions"]["packages"] = "write"


def _job_without_permissions(f: Flows, t: Texts) -> None:
    _job(f, "agent-image", "publish").pop("permissions")


def _secret_in_test_job(f: Flows, t: Texts) -> None:
    _job(f, "review", "test")["env"] = {"TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}


def _preview_checks_out_pr_at_root(f: Flows, t: Texts) -> None:
    step = _step(f, "review", "preview", lambda s: is_checkout(s) and s["with"].get("path") == "pr")
    step["with"].pop("path")


def _check_runs_prs_script(f: Flows, t: Texts) -> None:
    _job(f, "review", "preview")["steps"].insert(0, {"run": "./pr/scripts/bootstrap.sh runtime"})


def _persisted_credentials(f: Flows, t: Texts) -> None:
    _step(f, "review", "check", is_checkout)["with"].pop("persist-credentials")


def _comment_checks_out(f: Flows, t: Texts) -> None:
    _job(f, "review-comment", "comment")["steps"].insert(0, {"uses": "actions/checkout@" + "0" * 40})


def _tag_pin(f: Flows, t: Texts) -> None:
    t["deploy"] = re.sub(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", "actions/checkout@v4", t["deploy"], count=1)


def _short_sha(f: Flows, t: Texts) -> None:
    t["review"] = re.sub(r"(actions/setup-python@)([0-9a-f]{40})", lambda m: m.group(1) + m.group(2)[:12],
                         t["review"], count=1)


def _no_version_comment(f: Flows, t: Texts) -> None:
    t["prune"] = re.sub(r"(actions/checkout@[0-9a-f]{40}) # v[\d.]+", r"\1", t["prune"], count=1)


def _prune_every_hour(f: Flows, t: Texts) -> None:
    f["prune"][True]["schedule"] = [{"cron": "0 * * * *"}]


def _reconcile_every_30(f: Flows, t: Texts) -> None:
    f["deploy"][True]["schedule"] = [{"cron": "*/30 * * * *"}]


def _prune_unbounded(f: Flows, t: Texts) -> None:
    del f["prune"]["jobs"]["prune"]["timeout-minutes"]


def _prune_longer_than_its_schedule(f: Flows, t: Texts) -> None:
    f["prune"]["jobs"]["prune"]["timeout-minutes"] = 60


BREAKAGES: list[tuple[Callable[[Flows, Texts], list[str]], Callable[[Flows, Texts], None], str]] = [
    (deploy_follows_prune, _drop_prune_deploy, "no job calls"),
    (deploy_follows_prune, _no_inherit, "no job calls"),
    (deploy_follows_prune, _no_workflow_call, "no workflow_call"),
    (deploy_follows_prune, _pr_mode_default_token, "gets no checks"),
    (deploy_follows_prune, _pr_mode_no_guard, "fail loudly"),
    (deploy_follows_prune, _push_without_output, "does not say so"),
    (deploy_is_a_reconciling_gate, _deploy_no_schedule, "no schedule trigger"),
    (deploy_is_a_reconciling_gate, _deploy_no_concurrency, "no concurrency group"),
    (deploy_is_a_reconciling_gate, _deploy_no_check, "without `tms check`"),
    (kubeconfig_before_pulumi, _kubeconfig_after_pulumi, "deploy.up"),
    (kubeconfig_before_pulumi, _preview_without_kubeconfig, "review.preview"),
    (review_checks_merged_results, _no_merge_group, "merge_group"),
    (least_privilege, _top_level_write_all, "write-all"),
    (least_privilege, _check_job_writes, "pull-request trigger"),
    (least_privilege, _deploy_packages, "does not need"),
    (least_privilege, _job_without_permissions, "agent-image.publish"),
    (no_secrets_with_pr_code, _secret_in_test_job, "review.test: runs the PR's code with secrets"),
    (no_secrets_with_pr_code, _preview_checks_out_pr_at_root, "review.preview: runs the PR's code"),
    (no_secrets_with_pr_code, _check_runs_prs_script, "review.preview: runs the PR's code"),
    (no_secrets_with_pr_code, _persisted_credentials, "persist-credentials"),
    (no_secrets_with_pr_code, _comment_checks_out, "checks out code"),
    (pinned_by_sha, _tag_pin, "actions/checkout@v4 is not pinned"),
    (pinned_by_sha, _short_sha, "is not pinned"),
    (pinned_by_sha, _no_version_comment, "no `# vX.Y.Z` comment"),
    (schedules_match_the_guarantee, _prune_every_hour, "prune: runs every 60 min"),
    (schedules_match_the_guarantee, _reconcile_every_30, "deploy: runs every 30 min"),
    (prune_is_bounded, _prune_unbounded, "prune.prune: timeout-minutes None"),
    (prune_is_bounded, _prune_longer_than_its_schedule, "prune.prune: timeout-minutes 60"),
]


@pytest.mark.parametrize("invariant,breakage,expected", BREAKAGES,
                         ids=[f"{i.__name__}-{b.__name__.strip('_')}" for i, b, _ in BREAKAGES])
def test_each_invariant_catches_a_broken_copy(invariant: Callable[[Flows, Texts], list[str]],
                                              breakage: Callable[[Flows, Texts], None], expected: str) -> None:
    flows, texts = load(WORKFLOW_DIRS["repository"])
    assert invariant(flows, texts) == []
    flows, texts = copy.deepcopy(flows), dict(texts)
    breakage(flows, texts)
    problems = invariant(flows, texts)
    assert any(expected in p for p in problems), problems


def test_every_invariant_has_a_broken_copy() -> None:
    assert {i for i, _, _ in BREAKAGES} == set(INVARIANTS)
