"""Examples shown at the end of every command's `--help` (issue 14: no `--help` had any).

Kept in one table so that tests/cli/test_help.py can check each example against the command tree
(the command exists, every option it uses is one of that command's) and that every command has
one. Lines are at most 74 characters, so that help stays inside 80 columns."""

from __future__ import annotations

import inspect
import re
from typing import Any

EXAMPLES: dict[str, list[str]] = {
    "check": ["tms check", "tms check leases/fraud-detector.yaml", "tms check --format github",
              "tms check -o json --now 2027-01-01T00:00:00Z"],
    "render": ["tms render --out out/", "tms render --stack production --out out/production/"],
    "leases": ["tms leases", "tms leases -z | grep -oP 'lease:\\K[^\\s]+'"],
    "prune": ["tms prune --dry-run", "tms prune --message-file msg.txt && git commit -aF msg.txt",
              "tms prune --dry-run -o json"],
    "plan": ["tms plan --base origin/main --out plan.md", "tms plan --base origin/main -o json",
             'tms plan --base "$DEPLOYED_SHA" --stack prod --targets --out targets.txt'],
    "drift": ["tms drift --stack prod", "tms drift --stack prod --all-stacks --out drifted.txt",
              "pulumi stack export --file s.json && tms drift --state s.json"],
    "agent": ["tms agent --desired /etc/tms/desired.json --model-dir /models"],
    "agent-key": ["tms agent-key /var/run/tms/repo-key/value"],
    "doctor": ["tms doctor", "tms doctor --stack production --context prod-admin", "tms doctor --offline",
               "GITHUB_TOKEN=... tms doctor --branch main"],
    "init": ["tms init my-fleet", "tms init my-fleet --stack production --namespace triton",
             "tms init my-fleet --tool-spec 'tms-stack==0.1.0' -o json",
             "tms init my-fleet --index-url https://pypi.internal.example/simple/"],
    "version": ["tms version"],
    "shard list": ["tms shard list --stack prod", "tms shard list --stack prod --names"],
    "shard moves": ['tms shard moves --stack prod --base "$DEPLOYED_SHA"', "tms shard moves --stack prod --run"],
    "pool lock": ["tms pool lock", "git checkout --ours pools/placement.lock.yaml && tms pool lock"],
    "pool status": ["tms pool status shared-t4-pool", "tms pool status shared-t4-pool -v -o json"],
    "pool rebalance": ["tms pool rebalance", "tms pool rebalance --write"],
    "pool list": ["tms pool list", "tms pool list -v -z"],
    "pool create": ["tms pool create gpu_a100_pool --instance-quota 4 --instances 1,8",
                    'tms pool create cpu_pool -q 8 --triton-resources "cpu=4;gpu=0"'],
    "pool delete": ["tms pool delete gpu_a100_pool"],
    "pool merge-driver": ['git config merge.tms-lock.driver "tms pool merge-driver %O %A %B %P"'],
    "lease create": ["tms lease create -m name=densenet_onnx,uri=model://s3-models/densenet",
                     "tms lease create fraud-detector -m name=xgb,uri=model://s3-models/xgb \\",
                     '    --owner team-risk --duration 8h --triton-resources "cpu=4;gpu=1"',
                     "tms lease create -m name=bert,uri=model://s3-models/bert \\",
                     "    -p shared-t4-pool --quota 2"],
    "lease list": ["tms lease list", "tms lease list --owner team-risk -v", "tms lease list -o json",
                   "tms lease list --stack production --context prod"],
    "codeowners": ["tms codeowners && git add .github/CODEOWNERS", "tms codeowners --check"],
    "lease migrate": ["tms lease migrate && git commit -m 'leases in owner folders'"],
    "lease renew": ["tms lease renew fraud-detector", "tms lease renew fraud-detector --duration 2d"],
    "lease release": ["tms lease release fraud-detector"],
    "lease status": ["tms lease status fraud-detector", "tms lease status fraud-detector -o json"],
    "lease name create": ["tms lease name create fraud fraud-detector"],
    "lease name move": ["tms lease name move fraud fraud-detector fraud-detector-v2",
                        "tms lease name move fraud fraud-detector-v2 --force"],
    "lease name delete": ["tms lease name delete fraud fraud-detector", "tms lease name delete fraud --force"],
    "lease name list": ["tms lease name list", "tms lease name list -o json"],
    "allowlist add": ["tms allowlist add nvcr.io/nvidia/tritonserver:24.08-py3"],
    "allowlist rm": ["tms allowlist rm nvcr.io/nvidia/tritonserver:24.05-py3"],
    "allowlist list": ["tms allowlist list", "tms allowlist list -v"],
}

# An example paragraph already in a docstring (`Example: ...`) is replaced by the table's.
_OLD_EXAMPLE = re.compile(r"\n\s*Examples?:.*\Z", re.S)


def _with_examples(help_text: str, lines: list[str]) -> str:
    # A docstring's continuation lines keep their indentation: dedent as click does for __doc__,
    # or the help reads "the program     entry point".
    body = _OLD_EXAMPLE.sub("", inspect.cleandoc(help_text))
    # `\b` keeps click from re-wrapping the paragraph: one example per line, as typed.
    return body + "\n\nExamples:\n\n\b\n" + "\n".join("  " + line for line in lines)


def attach(app: Any, prefix: str = "") -> None:
    """Set each registered command's help to its docstring plus its examples."""
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        key = f"{prefix}{name}"
        lines = EXAMPLES.get(key)
        if lines:
            info.help = _with_examples(info.help or info.callback.__doc__ or "", lines)
    for group in app.registered_groups:
        attach(group.typer_instance, f"{prefix}{group.name} ")
