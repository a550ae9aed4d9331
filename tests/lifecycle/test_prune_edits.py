"""Prune's renewal edits every YAML form `tms check` accepts into a file that still passes check
and differs only in the `expires` value (issue 13 items 3, 4 and 5). In-process: the edit and the
check are the real ones; the activity source answers "active" so every expired lease renews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import copy_example
from tms_stack.commands.check import run_check
from tms_stack.commands.prune import decide
from tms_stack.commands.prune_apply import apply, rewrite_expires
from tms_stack.models import Lease
from tms_stack.repo.loader import load_repository
from tms_stack.repo.yamlio import parse

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


class Active:
    name = "test"
    timeout = 5.0

    def active(self, lease: Lease, start: datetime, end: datetime, **_: object) -> bool:
        return True


def _span(text: str) -> tuple[int, int]:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    spec = next(v for k, v in node.value if k.value == "spec")
    value = next(v for k, v in spec.value if k.value == "expires")
    return value.start_mark.index, value.end_mark.index


def assert_only_expires_changed(before: str, after: str) -> None:
    a0, b0 = _span(before)
    a1, b1 = _span(after)
    assert before[:a0] == after[:a1] and before[b0:] == after[b1:], (before, after)
    old, new = parse(before, "before").data, parse(after, "after").data
    assert old["spec"].pop("expires") != new["spec"].pop("expires")
    assert old == new


BLOCK = """# a lease in {form}
apiVersion: tms-stack/v1
kind: Lease
metadata:
  name: {name}   # keep me
  owner: team-search
spec:
  models:
    - name: m1
      uri: "model://shared-nfs/m1"
  {expires}
  autoRenew: {{renewalDuration: 4h}}
  names: [{name}-alias]
"""
FLOW = """apiVersion: tms-stack/v1
kind: Lease
metadata: {{name: {name}, owner: team-search}}
spec: {{models: [{{name: m1, uri: "model://shared-nfs/m1"}}], {expires}, autoRenew: {{}}}}
"""

FORMS = {
    "plain": "expires: 2026-11-30T00:00:00Z",
    "space": "expires: 2026-11-30 00:00:00Z",
    "space-before-zone": "expires: 2026-11-30 00:00:00 Z",
    "double-quoted": 'expires: "2026-11-30T00:00:00Z"',
    "single-quoted": "expires: '2026-11-30T00:00:00Z'",
    "offset": "expires: 2026-11-30T01:00:00+01:00",
    "fraction": "expires: 2026-11-30T00:00:00.5Z",
    "next-line": "expires:\n    2026-11-30T00:00:00Z",
    "comment": "expires: 2026-11-30T00:00:00Z     # renewed by prune",
}


def _repo(tmp: Path, name: str, text: str) -> Path:
    repo = copy_example(tmp / "repo")
    (repo / "leases" / f"{name}.yaml").write_text(text)
    return repo


def _renew(repo: Path, name: str) -> str:
    loaded = load_repository(repo)
    result = decide(loaded, NOW, Active())
    assert [r.lease for r in result.renewed] == [name], result.commit_message()
    apply(repo, loaded, result, NOW)
    return (repo / "leases" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("style", ["block", "flow"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_accepted_form_renews_to_a_valid_file(tmp_path: Path, form: str, style: str) -> None:
    expires = FORMS[form]
    if style == "flow":
        if "\n" in expires or "#" in expires:
            expires = expires.replace("\n   ", "").split("#")[0].rstrip()
        text = FLOW.format(name="odd", expires=expires)
    else:
        text = BLOCK.format(name="odd", form=form, expires=expires)
    repo = _repo(tmp_path, "odd", text)
    assert run_check(repo, NOW - timedelta(days=1)).exit_code == 0, text
    after = _renew(repo, "odd")
    assert_only_expires_changed(text, after)
    check = run_check(repo, NOW)
    assert check.exit_code == 0, [d.message for d in check.all()]
    renewed = load_repository(repo).lease("odd").spec.expires
    assert renewed == datetime(2026, 11, 30, 4, tzinfo=UTC) + timedelta(hours=4) or renewed > NOW


def test_issue_reproduction_space_timestamp_no_longer_corrupts() -> None:
    text = BLOCK.format(name="x", form="space", expires="expires: 2026-11-30 00:00:00Z")
    out = rewrite_expires(text, datetime(2026, 11, 30, 8, tzinfo=UTC))
    assert "  expires: 2026-11-30T08:00:00Z\n" in out and "00:00:00Z" not in out


def test_renewal_is_capped_at_the_lease_maximum(tmp_path: Path) -> None:
    """A renewalDuration over the admin maximum lease duration: check flags it, and prune (if the file
    got in anyway) renews only up to the maximum, so main keeps passing the duration rule."""
    repo = _repo(tmp_path, "odd", BLOCK.format(name="odd", form="long", expires=FORMS["plain"])
                 .replace("renewalDuration: 4h", "renewalDuration: 7d"))
    limits = repo / "policies" / "limits.yaml"
    limits.write_text(limits.read_text().replace("maximum: 365d}", "maximum: 1d}"))
    flagged = run_check(repo, NOW - timedelta(days=1))
    assert any(d.rule == "autorenew.renewal" and "maximum lease duration 1d" in d.message for d in flagged.all())
    loaded = load_repository(repo)
    result = decide(loaded, NOW, Active())
    assert [r.new for r in result.renewed] == [NOW + timedelta(days=1)]


# --- property: any lease check accepts renews to a valid file that differs in one value ----------

_stamp = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 29, 23),
                      timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))


@st.composite
def lease_texts(draw: st.DrawFn) -> str:
    when: datetime = draw(_stamp)
    sep = draw(st.sampled_from(["T", " ", "t"]))
    zone = draw(st.sampled_from(["Z", " Z", "+00:00", "-02:00", "+0130"]))
    if zone in ("-02:00",):
        shown = when - timedelta(hours=2)
    elif zone == "+0130":
        shown = when + timedelta(hours=1, minutes=30)
    else:
        shown = when
    frac = draw(st.sampled_from(["", ".0", ".123456"]))
    value = f"{shown:%Y-%m-%d}{sep}{shown:%H:%M:%S}{frac}{zone}"
    quote = draw(st.sampled_from(["", "'", '"']))
    if quote in ("'", '"'):
        value = f"{quote}{value}{quote}"
    else:
        value = quote + value
    style = draw(st.sampled_from(["block", "flow"]))
    if style == "flow":
        return FLOW.format(name="prop", expires=f"expires: {value}")
    indent = draw(st.sampled_from([2, 4]))
    gap = draw(st.sampled_from([" ", "   ", "\n" + " " * (indent + 2)]))
    comment = draw(st.sampled_from(["", "  # renewed by prune", " #x"]))
    pad = " " * indent
    return (f"apiVersion: tms-stack/v1\nkind: Lease\nmetadata:\n{pad}name: prop\n{pad}owner: team-search\n"
            f"spec:\n{pad}models:\n{pad}- name: m1\n{pad}  uri: model://shared-nfs/m1\n"
            f"{pad}expires:{gap}{value}{comment}\n{pad}autoRenew: {{}}\n")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=lease_texts())
def test_property_renewal_passes_check_and_changes_one_value(tmp_path_factory: pytest.TempPathFactory,
                                                            text: str) -> None:
    repo = _repo(tmp_path_factory.mktemp("prop"), "prop", text)
    accepted = run_check(repo, NOW - timedelta(days=1))
    # Only leases check accepts are in scope (a quoted value is parsed as ISO 8601, stricter than a
    # plain YAML timestamp). Hypothesis fails the test if it has to reject too many (filter_too_much),
    # so the property cannot pass vacuously.
    assume(accepted.exit_code == 0)
    after = _renew(repo, "prop")
    assert_only_expires_changed(text, after)
    check = run_check(repo, NOW)
    assert check.exit_code == 0, [f"{d.location()} {d.message}" for d in check.all()]
