"""Property: any repository `tms check` accepts renders objects the real API server accepts under
strict server-side apply. Hypothesis writes leases and pools (valid-looking values at the edges of
what the rules allow, mixed with hostile strings), the repository is checked; when check says OK,
every object rendered for the generated files is applied to the kube-apiserver fixture. A string
that slips through validation and breaks a deploy (a trailing newline in a label, a negative expiry
label, a name too long for Kubernetes) fails here instead of in production."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, copy_example
from tests.e2e.kubeapi import ApiError, Kube
from tms_stack.commands.check import run_check
from tms_stack.logic.pool_lock import compute
from tms_stack.render import render_repository
from tms_stack.repo.lockfile import read_lock, write_lock
from tms_stack.repo.stack import load_stack_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DNS1035 = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
HOSTILE = st.one_of(st.text(max_size=70), DNS1035.map(lambda s: s + "\n"), DNS1035.map(str.upper))


def mostly(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`valid` nine times in ten, else a hostile string (which check must refuse)."""
    return st.integers(0, 9).flatmap(lambda n: HOSTILE if n == 9 else valid)


NAME = mostly(DNS1035)
OWNERS = ["team-assist", "team-nlp", "team-risk", "team-search", "team-vision"]
OWNER = mostly(st.sampled_from(OWNERS))
MODEL_NAME = mostly(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True))
PATH = st.from_regex(r"[!#-&(-\[\]-~]{1,60}", fullmatch=True)
URI = mostly(st.one_of(PATH.map(lambda p: f"model://shared-nfs/{p}"),
                       PATH.map(lambda p: f"https://models.example.com/{p}")))
EXPIRES = st.one_of(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 11, 1), timezones=st.just(UTC)),
                    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2027, 11, 1), timezones=st.just(UTC)))
POOL_NAME = mostly(st.from_regex(r"[A-Za-z0-9_-]{8,80}", fullmatch=True))


def q(value: Any) -> str:
    """A YAML double-quoted scalar for any string (hostile ones included)."""
    import json

    return json.dumps(value, ensure_ascii=False)


@st.composite
def lease_files(draw: st.DrawFn, pool: str | None) -> tuple[str, str]:
    name = draw(NAME)
    models = draw(st.lists(st.tuples(MODEL_NAME, URI), min_size=1, max_size=3, unique_by=lambda m: m[0]))
    lines = ["apiVersion: tms-stack/v1", "kind: Lease", "metadata:", f"  name: {q(name)}",
             f"  owner: {q(draw(OWNER))}", "spec:", "  models:"]
    for model, uri in models:
        lines += [f"    - name: {q(model)}", f"      uri: {q(uri)}", "      backends: [python]"]
    expires = draw(EXPIRES)
    lines.append(f"  expires: {expires:%Y-%m-%dT%H:%M:%SZ}")
    aliases = draw(st.lists(NAME, max_size=3, unique=True))
    if aliases:
        lines.append(f"  names: [{', '.join(q(a) for a in aliases)}]")
    if pool is not None and draw(st.booleans()):
        lines.append(f"  pool: {{name: {q(pool)}, quota: {draw(st.integers(1, 8))}}}")
    else:
        cpu = draw(st.sampled_from(["1", "16", "1500m", "2.5"]))
        gpu = draw(st.integers(0, 2))
        lines += ["  triton:", f"    resources: {{cpu: {q(cpu)}, gpu: {gpu}}}"]
        if draw(st.booleans()):
            lo = draw(st.integers(1, 2))
            lines += ["    autoscaling:", f"      minReplicas: {lo}", f"      maxReplicas: {draw(st.integers(lo, 3))}"]
    return name, "\n".join(lines) + "\n"


@st.composite
def repositories(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    pools = []
    if draw(st.booleans()):
        name = draw(POOL_NAME)
        lo = draw(st.integers(0, 2))
        pools.append((name, "\n".join([
            "apiVersion: tms-stack/v1", "kind: Pool", "metadata:", f"  name: {q(name)}", "  owner: team-platform",
            "spec:", "  instanceQuota: 8", f"  instances: {{min: {lo}, max: {draw(st.integers(max(lo, 1), 8))}}}",
            "  triton:", f"    resources: {{cpu: 4, gpu: {draw(st.integers(0, 1))}}}"]) + "\n"))
    leases = draw(st.lists(lease_files(pools[0][0] if pools else None), min_size=1, max_size=2))
    return pools, leases


def _file_name(name: str) -> str | None:
    """The file stem a generated name is written under; None when it cannot be a file name."""
    if not name or "/" in name or "\x00" in name or name in (".", "..") or len(name.encode()) > 200:
        return None
    return name


ORDER = ["ServiceAccount", "ConfigMap", "Service"]
stats = {"accepted": 0, "refused": 0, "objects": 0}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(repositories())
def test_what_check_accepts_the_api_server_accepts(kube: Kube, namespace: str,
                                                   repo_files: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
    pools, leases = repo_files
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example(Path(tmp) / "repo")
        written: set[str] = set()
        for folder, entries in (("pools", pools), ("leases", leases)):
            for name, text in entries:
                stem = _file_name(name)
                if stem is None:
                    continue
                try:
                    (root / folder / f"{stem}.yaml").write_text(text, encoding="utf-8")
                except (OSError, UnicodeEncodeError):
                    continue
                written.add(stem)
        # Place pooled leases as `tms pool lock` would, so a valid repository is complete.
        from tms_stack.repo.loader import load_repository

        write_lock(root, compute(load_repository(root), read_lock(root)).lock)
        result = run_check(root, NOW)
        if result.exit_code != 0:
            stats["refused"] += 1
            return
        stats["accepted"] += 1
        settings_ = load_stack_settings(root, "example").model_copy(update={"namespace": namespace})
        groups = render_repository(result.repo, settings_, read_lock(root), NOW)
        objects = [obj for g in groups for obj in g.objects
                   if g.kind in ("Lease", "Pool", "Names") and (g.name in written or g.kind == "Names")]
        objects.sort(key=lambda o: ORDER.index(o["kind"]) if o["kind"] in ORDER else len(ORDER))
        errors = []
        for obj in objects:
            try:
                kube.apply(obj, manager="tms-property")
            except ApiError as exc:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.status} {exc.body_message}")
        stats["objects"] += len(objects)
        assert not errors, "tms check accepted what the API server refuses:\n" + "\n".join(errors) + \
            "\n\n" + "\n---\n".join(text for _, text in pools + leases)


def test_the_property_saw_accepted_repositories() -> None:
    """Runs after the property in file order: a generator that only produced refused repositories
    would make the property vacuous."""
    if stats["accepted"] + stats["refused"] == 0:
        pytest.skip("the property did not run in this session")
    assert stats["accepted"] >= 5, stats
    assert stats["objects"] > 0, stats

