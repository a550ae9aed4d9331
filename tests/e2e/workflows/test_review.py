"""review.yml and review-comment.yml, run as written by act (tests/e2e/workflows/act.py).

- pull_request (``refs/pull/N/merge``): the `check` job's trusted review passes a good lease and
  uploads the plan; review-comment.yml (what GitHub starts on `workflow_run` when review completes)
  downloads that artifact through the REST API and posts it as the one marked comment, then
  updates the same comment on the next review. A bad pull request (too many GPUs, an image the
  allowlist does not hold) fails `check` with annotations on its lines.
- The `test` job on a pull request that changes only leases/: it passes at once (pr-scope).
- merge_group: `check` judges the merge group's commit; nothing is uploaded for a comment.
The `preview` job needs the cluster and the engine: tests/e2e/workflows/test_deploy.py.

GitHub's own parts (the stand-in of tests/e2e/workflows/github.py, or the test itself): the merge ref,
starting review-comment after review, the REST API and the artifact storage.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.e2e.workflows.act import Act, Fleet, merge_group_event, pull_request_event, workflow_run_event
from tests.e2e.workflows.github import GitHubStandIn, PullRequest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MARKER = "<!-- tms-stack-plan -->"


def lease(name: str, gpu: int = 1, image: str | None = None) -> str:
    triton = f"  triton:\n    resources: {{gpu: {gpu}}}\n" + (f"    image: {image}\n" if image else "")
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n  name: {name}\n  owner: team-risk\n"
            f"spec:\n  models:\n    - name: m\n      uri: model://s3-models/{name}/m\n"
            f"  expires: 2027-01-01T00:00:00Z\n{triton}")


def open_pr(fleet: Fleet, github: GitHubStandIn, number: int, files: dict[str, str]) -> dict[str, str]:
    def edit(work: Path) -> None:
        for rel, text in files.items():
            (work / rel).write_text(text)

    pr = fleet.open_pull_request(number, f"pr-{number}", edit)
    github.pulls[number] = PullRequest(number, pr["head"], sorted(files))
    return pr


def test_a_good_pull_request_passes_check_and_its_plan_becomes_the_comment(act: Act, fleet: Fleet,
                                                                            github: GitHubStandIn) -> None:
    pr = open_pr(fleet, github, 7, {"leases/speech.yaml": lease("speech")})
    review = act.run(github, "review.yml", "pull_request", pull_request_event(pr), pr["merge"], job="check")
    assert review.job_result("review", "check") == "succeeded", review.tail()
    steps = dict(review.steps())
    assert steps["Main Check out the pull request (or the merge group's commit) as data"] == "success"
    assert steps["Main Trusted review (the base's tms check and tms plan on the pull request's files)"] == "success"
    # the PR's commit is what the second checkout fetched: GitHub's test merge, refs/pull/7/merge
    assert f"+{pr['merge']}:refs/remotes/pull/7/merge" in review.log
    with zipfile.ZipFile(github.uploaded(review.run_id)["tms-plan"]) as zf:
        plan = zf.read("plan.md").decode()
        assert zf.read("pr-number").decode().strip() == "7"
    assert plan.startswith(MARKER) and "speech" in plan

    # GitHub starts review-comment.yml (the default branch's copy) once review completed
    comment = act.run(github, "review-comment.yml", "workflow_run",
                      workflow_run_event(review.run_id, pr["head"], "success"), fleet.head("main"))
    assert comment.job_result("review-comment", "comment") == "succeeded", comment.tail()
    [posted] = github.pulls[7].comments
    assert posted["body"] == plan, "the comment is the plan the review uploaded"
    calls = [(m, p) for m, p, _ in github.calls if not p.startswith("/twirp/")]
    assert ("POST", f"/repos/{fleet.repository}/issues/7/comments") in calls

    # a second review of the same pull request updates that one comment
    again = act.run(github, "review-comment.yml", "workflow_run",
                    workflow_run_event(review.run_id, pr["head"], "success"), fleet.head("main"))
    assert again.job_result("review-comment", "comment") == "succeeded", again.tail()
    assert len(github.pulls[7].comments) == 1
    assert ("PATCH", f"/repos/{fleet.repository}/issues/comments/{posted['id']}") in [
        (m, p) for m, p, _ in github.calls]
    print(f"\nreview check job {review.seconds:.0f}s, review-comment {comment.seconds:.0f}s "
          f"(pull request opened -> plan comment {review.seconds + comment.seconds:.0f}s, act runs only)")


def test_a_bad_pull_request_fails_check_with_annotations_on_its_lines(act: Act, fleet: Fleet,
                                                                       github: GitHubStandIn) -> None:
    pr = open_pr(fleet, github, 8, {"leases/greedy.yaml": lease("greedy", gpu=8),
                                    "leases/miner.yaml": lease("miner", image="docker.io/attacker/miner:latest")})
    review = act.run(github, "review.yml", "pull_request", pull_request_event(pr), pr["merge"], job="check")
    assert review.job_result("review", "check") == "failed", review.tail()
    assert "::error file=leases/greedy.yaml,line=12" in review.log and "gpu: 8 exceeds the admin maximum" in review.log
    assert "::error file=leases/miner.yaml" in review.log and "docker.io/attacker/miner" in review.log
    # the plan still goes up (always()), so the author sees why in the comment
    assert "tms-plan" in github.uploaded(review.run_id)


def test_the_test_job_passes_at_once_for_a_leases_only_pull_request(act: Act, fleet: Fleet,
                                                                     github: GitHubStandIn) -> None:
    pr = open_pr(fleet, github, 9, {"leases/speech.yaml": lease("speech")})
    run = act.run(github, "review.yml", "pull_request", pull_request_event(pr), pr["merge"], job="test")
    assert run.job_result("review", "test") == "succeeded", run.tail()
    steps = dict(run.steps())
    assert steps["Main Only leases and pools changed?"] == "success"
    # setup-go, the tools cache and `make test` are skipped: `make test` is this very suite
    assert "Main Test suite" not in steps and "tool=false" in run.log


def test_the_merge_queue_runs_check_on_the_merge_groups_commit(act: Act, fleet: Fleet,
                                                                github: GitHubStandIn) -> None:
    pr = open_pr(fleet, github, 10, {"leases/greedy.yaml": lease("greedy", gpu=8)})
    # GitHub's merge queue builds the group's commit on a gh-readonly-queue branch
    ref = f"refs/heads/gh-readonly-queue/main/pr-10-{pr['base']}"
    fleet.push(pr["merge"], ref)
    run = act.run(github, "review.yml", "merge_group", merge_group_event(pr["base"], pr["merge"], 10), pr["merge"],
                  job="check", env={"GITHUB_REF": ref})
    assert run.job_result("review", "check") == "failed", run.tail()
    assert "gpu: 8 exceeds the admin maximum" in run.log
    assert not github.uploaded(run.run_id), "a merge group has no pull request to comment on"
