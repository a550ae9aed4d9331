"""The PrometheusRule's rules through the real promtool: syntax, and unit tests that feed
synthetic Triton series and assert the recorded queue-time, queue-percentage and GPU values."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tms_stack.render.monitoring import rules_file


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run scripts/deps.d/20-prometheus.sh (make test does)"
    return path


def test_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_file())
    out = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout


def test_promtool_check_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(rules_file().replace("rate(nv_inference_queue_duration_us[1m])", "rate(nv_inference_queue_duration_us[1m]", 1))
    assert subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True).returncode != 0


def _unit_test(rules: Path) -> dict:
    pod = 'namespace="triton",pod="fraud-detector-7d9f"'
    # Per pod, one model: every 15 s, 30 successes, 30*2000us queued, 30*10000us total.
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [
                {"series": f'nv_inference_queue_duration_us{{{pod},model="fraud_xgb",version="1"}}',
                 "values": "0+60000x20"},
                {"series": f'nv_inference_request_success{{{pod},model="fraud_xgb",version="1"}}',
                 "values": "0+30x20"},
                {"series": f'nv_inference_request_duration_us{{{pod},model="fraud_xgb",version="1"}}',
                 "values": "0+300000x20"},
                # Two GPUs in the pod (label as Triton 2.51 exports it on an H100: gpu_uuid).
                {"series": f'nv_gpu_utilization{{{pod},gpu_uuid="GPU-a"}}', "values": "0.6x20"},
                {"series": f'nv_gpu_utilization{{{pod},gpu_uuid="GPU-b"}}', "values": "0.9x20"},
                # An idle pod: no requests, so queue time is 0 rather than NaN.
                {"series": 'nv_inference_queue_duration_us{namespace="triton",pod="idle-0",model="m",version="1"}',
                 "values": "0x20"},
                {"series": 'nv_inference_request_success{namespace="triton",pod="idle-0",model="m",version="1"}',
                 "values": "0x20"},
                {"series": 'tms_agent_model_ready{namespace="triton",pod="p",owner="team-risk",lease="fraud-detector",model="fraud_xgb"}',
                 "values": "0x60"},
                {"series": 'tms_agent_lease_expiry_timestamp_seconds{namespace="triton",pod="p",owner="team-risk",lease="fraud-detector"}',
                 "values": "1800x60"},
                # A pool instance pod hosting two leases: `good` ready throughout, `bad` never, and
                # `late` not ready for 5 minutes, then ready (no alert: below the 10-minute `for`).
                # Each lease's series carries its owner (the agent exports it), whoever owns the pool.
                {"series": 'tms_agent_lease_ready{namespace="triton",pod="pool-0-x",owner="team-a",lease="good"}',
                 "values": "1x60"},
                {"series": 'tms_agent_lease_ready{namespace="triton",pod="pool-0-x",owner="team-nlp",lease="bad"}',
                 "values": "0x60"},
                {"series": 'tms_agent_lease_ready{namespace="triton",pod="pool-0-x",owner="team-a",lease="late"}',
                 "values": "0x20 1x40"},
            ],
            "promql_expr_test": [
                {"expr": "tms_queue_time_us", "eval_time": "4m",
                 "exp_samples": [{"labels": f"tms_queue_time_us{{{pod}}}", "value": 2000},
                                 {"labels": 'tms_queue_time_us{namespace="triton",pod="idle-0"}', "value": 0}]},
                {"expr": "tms_queue_time_percent", "eval_time": "4m",
                 "exp_samples": [{"labels": f"tms_queue_time_percent{{{pod}}}", "value": 20}]},
                {"expr": "tms_gpu_utilization_percent", "eval_time": "4m",
                 "exp_samples": [{"labels": f"tms_gpu_utilization_percent{{{pod}}}", "value": 75}]},
            ],
            "alert_rule_test": [
                {"alertname": "TmsModelNotReady", "eval_time": "5m", "exp_alerts": []},
                {"alertname": "TmsModelNotReady", "eval_time": "11m", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "triton", "pod": "p", "owner": "team-risk",
                                   "lease": "fraud-detector", "model": "fraud_xgb"},
                    "exp_annotations": {
                        "summary": "Model fraud_xgb of lease fraud-detector is not ready",
                        "description": "The model agent in triton/p has not had fraud_xgb READY in Triton for "
                                       "10 minutes; see the agent's log."}}]},
                # Expiry at t=1800s: inside the last hour from the start; past it at 31m.
                {"alertname": "TmsLeaseExpiringSoon", "eval_time": "1m", "exp_alerts": [{
                    "exp_labels": {"severity": "info", "namespace": "triton", "owner": "team-risk",
                                   "lease": "fraud-detector"},
                    "exp_annotations": {
                        "summary": "Lease fraud-detector expires within an hour",
                        "description": "Renew it with `tms lease renew fraud-detector` and merge, or let the "
                                       "prune job remove it."}}]},
                {"alertname": "TmsLeaseExpiringSoon", "eval_time": "31m", "exp_alerts": []},
                {"alertname": "TmsLeaseNotReady", "eval_time": "9m", "exp_alerts": []},
                {"alertname": "TmsLeaseNotReady", "eval_time": "12m", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "triton", "owner": "team-nlp", "lease": "bad"},
                    "exp_annotations": {
                        "summary": "Lease bad is not ready",
                        "description": "No model agent in triton has had every model of lease bad READY for "
                                       "10 minutes; `tms lease status bad` shows which model and why."}}]},
            ],
        }],
    }


def test_promtool_unit_tests_of_recorded_values(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_file())
    test = tmp_path / "test.yaml"
    test.write_text(yaml.safe_dump(_unit_test(rules), sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_test_fails_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The harness can fail: expecting 3000us where 2000us is recorded is reported."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_file())
    spec = _unit_test(rules)
    spec["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 3000
    test = tmp_path / "test.yaml"
    test.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert subprocess.run([promtool, "test", "rules", str(test)], capture_output=True).returncode != 0


def test_recorded_gpu_series_match_a_real_triton_scrape() -> None:
    """The GPU metric and its label, as scraped from the pytriton tritonserver on a real H100."""
    scrape = (Path(__file__).resolve().parents[1] / "fixtures" / "triton-2.51-h100-metrics.txt").read_text()
    assert any(line.startswith('nv_gpu_utilization{gpu_uuid="GPU-') for line in scrape.splitlines())
    assert "avg by (namespace, pod) (nv_gpu_utilization)" in rules_file()


def test_every_alert_keeps_owner_and_lease() -> None:
    """Alertmanager routes on `owner` (docs/admin-setup.md): an aggregation that drops it would
    page everyone again. Each alert's expression keeps both labels in every `by (...)`."""
    import re

    from tms_stack.render.monitoring import ALERT_RULES

    for rule in ALERT_RULES:
        groups = re.findall(r"by \(([^)]*)\)", rule["expr"])
        assert groups, rule["alert"]
        for group in groups:
            labels = {g.strip() for g in group.split(",")}
            assert {"owner", "lease"} <= labels, (rule["alert"], group)


def test_promtool_fails_when_the_alert_would_page_the_wrong_owner(promtool: str, tmp_path: Path) -> None:
    """The owner expectation is real: TmsLeaseNotReady for lease `bad` expected with team-a fails."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_file())
    spec = _unit_test(rules)
    not_ready = [t for t in spec["tests"][0]["alert_rule_test"]
                 if t["alertname"] == "TmsLeaseNotReady" and t["exp_alerts"]][0]
    assert not_ready["exp_alerts"][0]["exp_labels"]["owner"] == "team-nlp"
    not_ready["exp_alerts"][0]["exp_labels"]["owner"] = "team-a"
    test = tmp_path / "test.yaml"
    test.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True)
    assert out.returncode != 0 and "team-nlp" in out.stdout + out.stderr
