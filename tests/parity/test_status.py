"""`tms lease status` States from what the cluster shows (pure part; the cluster part is
tests/e2e/test_lease_status.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from tms_stack.outside.status import ClusterView, assess

EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def dep(ready: int, *conditions: dict[str, str]) -> dict:
    return {"status": {"readyReplicas": ready, "conditions": list(conditions)}}


def test_states() -> None:
    available = {"type": "Available", "status": "True", "lastTransitionTime": "2026-11-21T10:00:00Z"}
    assert assess(EXPIRES, NOW, ClusterView(dep(1, available))) == ("Valid", datetime(2026, 11, 21, 10, tzinfo=UTC), None)
    assert assess(EXPIRES, NOW, ClusterView(dep(0, {"type": "Available", "status": "False"})))[0] == "Pending"
    failed = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
              "message": "ReplicaSet has timed out progressing."}
    state, _, note = assess(EXPIRES, NOW, ClusterView(dep(0, failed)))
    assert state == "Invalid" and "timed out" in (note or "")
    state, _, note = assess(EXPIRES, NOW, ClusterView(None))
    assert state == "Pending" and "not deployed" in (note or "")
    assert assess(EXPIRES, NOW, None) == ("Unknown", None, None)  # no cluster: the caller adds the note
    assert assess(EXPIRES, EXPIRES, ClusterView(dep(1, available)))[0] == "Expired"


def test_released_lease_is_found_in_git_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from typer.testing import CliRunner

    from tms_stack.cli import app

    (tmp_path / "leases").mkdir()
    (tmp_path / "leases" / "gone.yaml").write_text("x: 1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@x"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "add"], cwd=tmp_path, check=True)
    subprocess.run(["git", "rm", "-q", "leases/gone.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "release"], cwd=tmp_path, check=True)
    result = CliRunner().invoke(app, ["lease", "status", "gone", "--root", str(tmp_path)])
    assert result.exit_code == 0 and "State: Released" in result.stdout
    missing = CliRunner().invoke(app, ["lease", "status", "never", "--root", str(tmp_path)])
    assert missing.exit_code == 1 and "git history has no such lease" in missing.stderr


METRICS = """# HELP tms_agent_model_ready 1 when the model is READY in Triton.
# TYPE tms_agent_model_ready gauge
tms_agent_model_ready{lease="chat-small",model="chat_small"} 1
tms_agent_model_ready{lease="other",model="x"} 0
tms_agent_model_ready{lease="ranker",model="ranker_onnx"} 0
tms_agent_model_ready{lease="ranker",model="tok"} 1
tms_agent_model_load_failures_total{lease="ranker",model="ranker_onnx"} 3
"""


def test_per_model_readiness_from_the_agent_decides_a_pooled_lease() -> None:
    from tms_stack.outside.status import agent_readiness

    available = {"type": "Available", "status": "True", "lastTransitionTime": "2026-11-21T10:00:00Z"}
    models, failures = agent_readiness(METRICS, "ranker")
    assert models == {"ranker_onnx": False, "tok": True} and failures == 3
    state, _, note = assess(EXPIRES, NOW, ClusterView(dep(1, available), models=models, failures=failures))
    assert state == "Invalid" and "ranker_onnx" in (note or "")
    assert assess(EXPIRES, NOW, ClusterView(dep(1, available), models=models, failures=0))[0] == "Pending"
    ok, _ = agent_readiness(METRICS, "chat-small")
    assert assess(EXPIRES, NOW, ClusterView(dep(1, available), models=ok))[0] == "Valid"
    unknown = ClusterView(dep(1, available), agent_note="per-model readiness unknown")
    assert assess(EXPIRES, NOW, unknown) == ("Valid", datetime(2026, 11, 21, 10, tzinfo=UTC), "per-model readiness unknown")


def test_the_agents_reason_reaches_a_pooled_leases_status() -> None:
    """The pool instance is Ready (first pass done) while `ranker` fails: status says why, from
    the agent's /ready body, printable and capped."""
    import json

    from tms_stack.outside.status import MAX_REASON, agent_failure

    body = json.dumps({"ready": True, "notReady": {"ranker": ["ranker_onnx"]},
                       "failed": {"ranker": "Triton failed to load ranker_onnx: bad\x1b[31m config\n"}})
    reason = agent_failure(body, "ranker")
    assert reason == "Triton failed to load ranker_onnx: bad [31m config"
    assert agent_failure(body, "chat-small") is None
    assert agent_failure("not json", "ranker") is None and agent_failure("None", "ranker") is None
    assert agent_failure(json.dumps({"failed": ["x"]}), "ranker") is None
    long = agent_failure(json.dumps({"failed": {"ranker": "x" * 5000}}), "ranker")
    assert long is not None and len(long) == MAX_REASON and long.endswith("…")
    available = {"type": "Available", "status": "True", "lastTransitionTime": "2026-11-21T10:00:00Z"}
    view = ClusterView(dep(1, available), models={"ranker_onnx": False, "tok": True}, failures=3, failure=reason)
    state, _, note = assess(EXPIRES, NOW, view)
    assert state == "Invalid" and note == (
        "not loaded: ranker_onnx (3 failed fetch/load attempt(s)): Triton failed to load ranker_onnx: bad [31m config")
