"""Does GitHub enforce CODEOWNERS here? Branch protection must require code-owner review, or the
owner folders and .github/CODEOWNERS only *request* reviews (docs/security.md, "Who may change what").

Reads GitHub's REST API: `GET /repos/{owner}/{repo}/branches/{branch}/protection`
(`required_pull_request_reviews.require_code_owner_reviews`) and, when the branch has no classic
protection, the rules that apply to it (`GET /repos/{owner}/{repo}/rules/branches/{branch}`, a
`pull_request` rule with `require_code_owner_review`). A token from GITHUB_TOKEN or GH_TOKEN is
sent when set (reading protection needs admin rights on the repository). What cannot be read is a
warning that says so, never a failure: only a protection that is read and found off fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tms_stack.commands.doctor import Check

API = "https://api.github.com"
TIMEOUT_S = 5
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})")
_REMOTE = re.compile(r"(?:git@github\.com:|(?:https|ssh)://(?:[^@/]+@)?github\.com/)([^/]+)/([^/]+?)(?:\.git)?/?$")
FIX = ("GitHub: Settings > Branches (or Rules > Rulesets) > {branch}: require a pull request before merging, "
       "with \"Require review from Code Owners\"")


def github_repository(root: Path, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(owner, repo) from GITHUB_REPOSITORY (set in GitHub Actions), else from the `origin` remote."""
    given = env.get("GITHUB_REPOSITORY", "")
    if "/" in given:
        owner, _, repo = given.partition("/")
    else:
        try:
            out = subprocess.run(["git", "remote", "get-url", "origin"], cwd=root, capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = _REMOTE.match(out.stdout.strip()) if out.returncode == 0 else None
        if not found:
            return None
        owner, repo = found.group(1), found.group(2)
    if not (_NAME.fullmatch(owner) and _NAME.fullmatch(repo)):
        return None
    return owner, repo


def _get(url: str, token: str | None) -> tuple[int, Any]:
    """(HTTP status, JSON body or None); status 0 when nothing answered."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "User-Agent": "tms-doctor"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - https or a set API URL
            status, raw = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1_000_000)
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


def branch_protection_check(root: Path, branch: str, env: Mapping[str, str]) -> Check:
    name = "code-owner review"
    where = github_repository(root, env)
    if where is None:
        return Check("github", name, "warn", "not checked: which GitHub repository this is is unknown (no "
                     "GITHUB_REPOSITORY, and the origin remote is not on GitHub)",
                     "GITHUB_REPOSITORY=OWNER/REPO GITHUB_TOKEN=... tms doctor")
    owner, repo = where
    api = env.get("GITHUB_API_URL", API).rstrip("/")
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None
    base = f"{api}/repos/{quote(owner)}/{quote(repo)}"
    label = f"{owner}/{repo} {branch}"
    fix = FIX.format(branch=branch)
    status, body = _get(f"{base}/branches/{quote(branch, safe='')}/protection", token)
    if status == 200 and isinstance(body, dict):
        reviews = body.get("required_pull_request_reviews")
        if isinstance(reviews, dict) and reviews.get("require_code_owner_reviews") is True:
            return Check("github", name, "ok", f"{label}: branch protection requires review from Code Owners")
        return Check("github", name, "fail", f"{label}: branch protection does not require review from Code "
                     "Owners: CODEOWNERS only requests reviews, any approval merges a lease of another team", fix)
    message = body.get("message", "") if isinstance(body, dict) else ""
    message = re.sub(r"[\x00-\x1f\x7f]", "?", message if isinstance(message, str) else "")[:200]
    if status == 404 and message == "Branch not protected":
        rules_status, rules = _get(f"{base}/rules/branches/{quote(branch, safe='')}", token)
        if rules_status == 200 and isinstance(rules, list):
            if any(isinstance(r, dict) and r.get("type") == "pull_request"
                   and isinstance(r.get("parameters"), dict) and r["parameters"].get("require_code_owner_review")
                   for r in rules):
                return Check("github", name, "ok", f"{label}: a ruleset requires review from Code Owners")
            return Check("github", name, "fail", f"{label}: the branch is not protected and no ruleset requires "
                         "review from Code Owners: anyone's approval merges anything", fix)
    why = ("no answer" if status == 0 else f"HTTP {status}" + (f" {message}" if message else ""))
    hint = "" if token else " (no GITHUB_TOKEN or GH_TOKEN set; reading protection needs repository admin rights)"
    return Check("github", name, "warn", f"{label}: branch protection could not be read: {why}{hint}", fix)
