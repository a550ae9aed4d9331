"""Runs this repository's own `.github/workflows/*.yml`, unmodified, with nektos/act in host mode
(no container daemon) and the actions the workflows pin, from ../shared/vendor/actions at the
pinned commits.

- **The fleet repository** (:class:`Fleet`): this repository's tracked files as they are in the
  work tree (so the workflow files under test are the ones being changed), with the test fixture's
  leases/, pools/, policies/ and stack file instead of the root's (tests never read those), in a
  bare repository on a git smart-HTTP server on loopback (tests/e2e/workflows/gitserver.py).
  ``GITHUB_SERVER_URL`` is ``http://git.localhost:PORT``: the artifact actions accept no host but
  github.com, ``*.ghe.com`` and ``*.localhost``; git reaches it through ``url.<loopback>.insteadOf``
  in the runner's environment (``GIT_CONFIG_*``), so nothing host-wide (/etc/hosts) changes.
- **Events** built like GitHub's payloads (:func:`pull_request_event` ...); each run starts in a
  fresh clone at the event's commit (act reads ``github.sha`` from its HEAD, as GitHub's is the
  commit the event is about), with its own run id.
- **Actions**: ``--local-repository owner/repo@sha=<unpacked folder>`` for each vendored action;
  pulumi/actions finds the engine built from ../shared/vendor on PATH at the version the workflows
  ask for and downloads nothing; setup-python and setup-go find the running interpreter and Go
  toolchain in a tool cache (``<cache>/tool_cache/<Tool>/<version>/x64``, as a hosted runner has).
- GitHub's REST API and artifact service: the stand-in of tests/e2e/workflows/github.py (act's own
  artifact server cannot take what upload-artifact v7 sends; that module says why), reached
  through ``GITHUB_API_URL`` and ``ACTIONS_RUNTIME_URL``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.workflows.github import GitHubStandIn
from tests.e2e.workflows.gitserver import GitServer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "tests" / "fixtures" / "example"
REPOSITORY = "tms-fleet/fleet"
GIT_ENV = {"GIT_AUTHOR_NAME": "engineer", "GIT_AUTHOR_EMAIL": "engineer@example.com",
           "GIT_COMMITTER_NAME": "engineer", "GIT_COMMITTER_EMAIL": "engineer@example.com"}
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})")


def vendor_actions_dir() -> Path | None:
    """../shared/vendor/actions beside the checkout (or beside its parent, for a worktree)."""
    env = os.environ.get("TMS_VENDOR_DIR")
    candidates = [Path(env) / "actions"] if env else []
    candidates += [ROOT.parent / "shared" / "vendor" / "actions", ROOT.parent.parent / "shared" / "vendor" / "actions"]
    return next((c for c in candidates if (c / "SHA256SUMS").exists()), None)


def pinned_actions() -> set[tuple[str, str]]:
    """(owner/repo, sha) of every action the workflows use."""
    found: set[tuple[str, str]] = set()
    for wf in (ROOT / ".github" / "workflows").glob("*.yml"):
        found.update(USES.findall(wf.read_text()))
    return found


def unpack_actions(vendor: Path, into: Path) -> dict[str, Path]:
    """``owner/repo@sha`` -> its unpacked folder, for the vendored ones (the docker/* actions of
    agent-image.yml are not vendored)."""
    into.mkdir(parents=True, exist_ok=True)
    out = {}
    for tarball in sorted(vendor.glob("*.tar.xz")):
        name = tarball.name[: -len(".tar.xz")]
        folder = into / name
        if not folder.exists():
            with tarfile.open(tarball) as tf:
                tf.extractall(into, filter="data")
        out[name.replace("+", "/", 1)] = folder
    return out


def wheelhouse(cache: Path) -> Path:
    """The project's runtime dependencies (and setuptools, pip) as wheels, downloaded from PyPI once
    and cached under the tools cache, keyed by pyproject.toml and the Python version. The runner's
    pip installs from it (``PIP_FIND_LINKS``, ``PIP_NO_INDEX``), as a runner restoring a pip cache
    would: each job's `./scripts/bootstrap.sh` still builds its own virtual environment."""
    import fcntl
    import hashlib

    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + sys.version.encode()).hexdigest()[:12]
    out = cache / "wheelhouse" / key
    if (out / ".complete").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / ".complete").exists():
            print(f"[tms-workflows] downloading the runtime dependencies into {out} (once) ...", flush=True)
            tmp = out.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(tmp), str(ROOT),
                            "setuptools>=68", "pip"], check=True)
            for built in tmp.glob("tms_stack-*"):   # the project itself is built by each job
                built.unlink()
            (tmp / ".complete").write_text("")
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
    return out


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, check=check,
                          capture_output=True, text=True).stdout.strip()


class Fleet:
    """The fleet repository on the git server, and a work clone the tests commit in as engineers do."""

    def __init__(self, server: GitServer, workdir: Path, data: Path = EXAMPLE, stack: str = "example"):
        """``data``: the folder whose leases/, pools/, policies/ and ``Pulumi.<stack>.yaml`` the fleet
        starts with (a test fixture, never this repository's root)."""
        self.server = server
        self.bare = server.create(REPOSITORY)
        self.work = workdir / "engineer"
        self.work.mkdir(parents=True)
        for rel in git(ROOT, "ls-files", "-z").split("\0"):
            if not rel or rel.split("/")[0] in ("leases", "pools", "policies") or re.fullmatch(r"Pulumi\.[^/]*\.yaml", rel):
                continue
            src = ROOT / rel
            if src.is_file():
                (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, self.work / rel)
        for part in ("leases", "pools", "policies"):
            shutil.copytree(data / part, self.work / part)
        shutil.copy2(data / f"Pulumi.{stack}.yaml", self.work / f"Pulumi.{stack}.yaml")
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", f"{server.url}/{REPOSITORY}")
        self.commit("the fleet")
        git(self.work, "push", "-q", "origin", "main")

    repository = REPOSITORY

    def push(self, sha: str, ref: str) -> None:
        git(self.work, "push", "-q", "-f", "origin", f"{sha}:{ref}")

    def commit(self, message: str) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def head(self, ref: str = "main") -> str:
        return git(self.bare, "rev-parse", ref)

    def open_pull_request(self, number: int, branch: str, edit) -> dict[str, str]:  # type: ignore[no-untyped-def]
        """A branch off main with ``edit(work_dir)`` committed, pushed, and GitHub's test merge of it
        into main pushed as ``refs/pull/N/merge`` (and the head as ``refs/pull/N/head``)."""
        git(self.work, "fetch", "-q", "origin")
        git(self.work, "checkout", "-q", "-B", branch, "origin/main")
        edit(self.work)
        head = self.commit(f"pull request #{number}")
        base = git(self.work, "rev-parse", "origin/main")
        git(self.work, "push", "-q", "-f", "origin", f"{branch}:refs/heads/{branch}", f"{head}:refs/pull/{number}/head")
        git(self.work, "checkout", "-q", "--detach", base)
        git(self.work, "merge", "-q", "--no-ff", "-m", f"Merge {head} into {base}", head)
        merge = git(self.work, "rev-parse", "HEAD")
        git(self.work, "push", "-q", "-f", "origin", f"{merge}:refs/pull/{number}/merge")
        git(self.work, "checkout", "-q", "main")
        return {"number": str(number), "head": head, "base": base, "merge": merge, "branch": branch}

    def merge(self, pr: dict[str, str]) -> tuple[str, str]:
        """What the merge button does (a merge commit on main); (before, after)."""
        git(self.work, "fetch", "-q", "origin")
        git(self.work, "checkout", "-q", "-B", "main", "origin/main")
        before = git(self.work, "rev-parse", "HEAD")
        git(self.work, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{pr['number']} from {pr['branch']}",
            pr["head"])
        git(self.work, "push", "-q", "origin", "main")
        return before, git(self.work, "rev-parse", "HEAD")


def repository_payload() -> dict[str, Any]:
    owner, name = REPOSITORY.split("/")
    return {"full_name": REPOSITORY, "name": name, "owner": {"login": owner}, "default_branch": "main",
            "fork": False}


def pull_request_event(pr: dict[str, str], action: str = "opened") -> dict[str, Any]:
    repo = repository_payload()
    return {"action": action, "number": int(pr["number"]), "repository": repo,
            "pull_request": {"number": int(pr["number"]),
                             "head": {"sha": pr["head"], "ref": pr["branch"], "repo": repo},
                             "base": {"sha": pr["base"], "ref": "main", "repo": repo}}}


def push_event(before: str, after: str) -> dict[str, Any]:
    return {"ref": "refs/heads/main", "before": before, "after": after, "deleted": False, "created": False,
            "repository": repository_payload()}


def schedule_event(cron: str) -> dict[str, Any]:
    return {"schedule": cron, "repository": repository_payload()}


def dispatch_event() -> dict[str, Any]:
    return {"ref": "refs/heads/main", "inputs": {}, "repository": repository_payload()}


def merge_group_event(base: str, head: str, number: int) -> dict[str, Any]:
    return {"action": "checks_requested", "repository": repository_payload(),
            "merge_group": {"head_sha": head, "head_ref": f"refs/heads/gh-readonly-queue/main/pr-{number}-{base}",
                            "base_sha": base, "base_ref": "refs/heads/main"}}


def workflow_run_event(run_id: int, head_sha: str, conclusion: str) -> dict[str, Any]:
    return {"action": "completed", "repository": repository_payload(),
            "workflow_run": {"id": run_id, "name": "review", "event": "pull_request", "status": "completed",
                             "conclusion": conclusion, "head_sha": head_sha}}


def runtime_token(run_id: int) -> str:
    """A JWT shaped like the runner's ACTIONS_RUNTIME_TOKEN: @actions/artifact reads the run and job
    ids from its `scp` claim (it verifies nothing; the stand-in neither)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"scp": f"Actions.Results:{run_id}:{run_id}", "exp": int(time.time()) + 86400}).encode())
    sig = b64(hmac.new(b"", f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


@dataclass
class Run:
    run_id: int
    returncode: int
    log: str
    seconds: float
    outputs_dir: Path

    def job_result(self, workflow: str, job: str) -> str | None:
        """"succeeded" / "failed" as act reports the job (``[workflow/job] 🏁  Job succeeded``)."""
        # act pads job names to the longest in the run: `[review/test ]` beside `[review/preview]`
        found = re.findall(rf"^\[{re.escape(workflow)}/{re.escape(job)} *\]\s+🏁  Job (\w+)", self.log, re.M)
        return found[-1] if found else None

    def tail(self, n: int = 8000) -> str:
        return "\n".join(line for line in self.log.splitlines() if "LocalRepositoryCache" not in line)[-n:]

    def steps(self) -> list[tuple[str, str]]:
        """(step name, "success"|"failure"|...) in the order act reported them."""
        out = []
        for m in re.finditer(r"^\[[^\]]*\]\s+(✅  Success|❌  Failure|⏭  Skipping)\s+-\s+(.+?)(?: \[[\d.]+m?s\])?$",
                             self.log, re.M):
            out.append((m[2].strip(), {"✅  Success": "success", "❌  Failure": "failure"}.get(m[1], "skipped")))
        return out


class Act:
    def __init__(self, act_bin: str, workdir: Path, server: GitServer, actions: dict[str, Path],
                 path_dirs: list[str], wheels: Path | None = None):
        self.act_bin = act_bin
        self.workdir = workdir
        self.server = server
        self.actions = actions
        self.path_dirs = path_dirs
        self.wheels = wheels
        self.run_id = 100
        self.cache = workdir / "act-cache"
        self.home = workdir / "runner-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.server_url = f"http://git.localhost:{server.port}"
        self._tool_cache()

    def _tool_cache(self) -> None:
        """The running Python and the Go toolchain, where setup-python / setup-go look first."""
        tc = self.cache / "tool_cache"
        version = ".".join(map(str, sys.version_info[:3]))
        tools = [("Python", version, Path(sys.base_prefix))]
        go = shutil.which("go")
        if go:
            goroot = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True).stdout.strip()
            gover = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
            tools.append(("go", gover.removeprefix("go"), Path(goroot)))
        for tool, ver, prefix in tools:
            d = tc / tool / ver
            d.mkdir(parents=True, exist_ok=True)
            if not (d / "x64").exists():
                (d / "x64").symlink_to(prefix, target_is_directory=True)
            (d / "x64.complete").write_text("")

    def run(self, github: GitHubStandIn, workflow: str, event_name: str, event: dict[str, Any], sha: str,
            secrets: dict[str, str] | None = None, variables: dict[str, str] | None = None,
            env: dict[str, str] | None = None, job: str | None = None, timeout: float = 1800) -> Run:
        """One workflow run: a fresh clone at ``sha`` is the runner's workspace."""
        self.run_id += 1
        run_dir = self.workdir / f"run-{self.run_id}"
        clone = run_dir / "workspace"
        subprocess.run(["git", "clone", "-q", f"{self.server.url}/{REPOSITORY}", str(clone)], check=True)
        git(clone, "fetch", "-q", "origin", sha)
        git(clone, "checkout", "-q", "--detach", sha)
        (run_dir / "event.json").write_text(json.dumps(event))
        argv = [self.act_bin, event_name, "-W", f".github/workflows/{workflow}", "-e", str(run_dir / "event.json"),
                "-P", "ubuntu-latest=-self-hosted", "--no-skip-checkout", "--action-cache-path", str(self.cache),
                "--secret-file", "/dev/null",
                "--var-file", "/dev/null", "--env-file", "/dev/null", "--concurrent-jobs", "1",
                "--defaultbranch", "main"]
        # every job gets a token from GitHub; here it opens nothing (the stand-ins take any)
        for k, v in {"GITHUB_TOKEN": "ghs_stand-in-token", **(secrets or {})}.items():
            argv += ["--secret", f"{k}={v}"]
        for k, v in (variables or {}).items():
            argv += ["--var", f"{k}={v}"]
        if job:
            argv += ["-j", job]
        for name, folder in sorted(self.actions.items()):
            argv += ["--local-repository", f"{name}={folder}"]
        run_env = {
            "GITHUB_SERVER_URL": self.server_url,
            "GITHUB_API_URL": github.url,
            "GITHUB_GRAPHQL_URL": f"{github.url}/graphql",
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_RUN_ID": str(self.run_id),
            "GITHUB_RUN_NUMBER": str(self.run_id),
            # the artifact service GitHub gives every job (the stand-in; act makes these only for
            # its own artifact server)
            "ACTIONS_RUNTIME_URL": f"{github.url}/",
            "ACTIONS_RESULTS_URL": f"{github.url}/",
            "ACTIONS_RUNTIME_TOKEN": runtime_token(self.run_id),
            **(env or {}),
        }
        for k, v in run_env.items():
            argv += ["--env", f"{k}={v}"]
        proc_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PULUMI_", "KUBE", "GITHUB_", "RUNNER_", "ACTIONS_", "GIT_", "VIRTUAL_ENV"))}
        proc_env.update(
            HOME=str(self.home),
            # caches a hosted runner would restore: pip's wheels, the trusted review's environment
            XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
            PATH=os.pathsep.join([*self.path_dirs, "/usr/local/bin", "/usr/bin", "/bin"]),
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"url.{self.server.url}/.insteadOf",
            GIT_CONFIG_VALUE_0=f"{self.server_url}/",
            NO_COLOR="1",
        )
        if self.wheels is not None:
            proc_env.update(PIP_FIND_LINKS=str(self.wheels), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        start = time.monotonic()
        p = subprocess.run(argv, cwd=clone, env=proc_env, capture_output=True, text=True, timeout=timeout)
        took = time.monotonic() - start
        log = p.stdout + p.stderr
        (run_dir / "act.log").write_text(log)
        return Run(self.run_id, p.returncode, log, took, run_dir)
