"""Findings about user files, each pinned to file:line:col, and the project's one error tree.

Every error a user can cause is a `TmsError` (or a subclass), and its class says the exit code
(`ExitCode`, the table of docs/cli.md): the command line maps an error to one line and that code
in one place (tms_stack/cli/common.py: describe). Errors of outside systems (the cluster,
Prometheus, model repositories) and of the agent are subclasses too, so nothing a user can cause
escapes as a traceback."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum

# The rule ids of input that cannot be read at all (broken YAML, conflict markers): such a finding
# makes `tms check` exit 2, not 1 (docs/cli.md). Rules report it like any other finding.
UNREADABLE_RULE = "yaml"
UNREADABLE_RULES = frozenset({UNREADABLE_RULE, "lock.conflict"})


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem. `line`/`col` are 1-based (0 when the whole file is meant)."""

    file: str
    line: int
    col: int
    rule: str
    message: str
    severity: Severity = field(default=Severity.ERROR, compare=False)

    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class ExitCode(IntEnum):
    """The exit codes of every `tms` command: the one table (docs/cli.md is checked against it)."""

    OK = 0  # done, or check found nothing
    FINDINGS = 1  # policy findings (check, plan), or a refused edit that check would flag
    USAGE = 2  # usage error or unreadable input (bad option, broken YAML, unknown stack, git refused)
    CONFLICT = 3  # conflict: the thing already exists, or the change races another


class TmsError(Exception):
    """An error a user can act on; carries diagnostics when they are known. Exit code 2 unless a
    subclass says otherwise."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics or []


class UnreadableInput(TmsError):
    """Input that cannot be parsed at all (broken YAML, unknown kind): exit code 2."""


class PolicyFindings(TmsError):
    """The repository breaks a policy (what `tms check` reports): exit code 1."""

    exit_code = ExitCode.FINDINGS


class Refused(TmsError):
    """An edit the repository's content does not allow (check would flag it, the thing does not
    exist, its state forbids it): exit code 1, like check's findings."""

    exit_code = ExitCode.FINDINGS


class Conflict(TmsError):
    """The thing already exists, or the change races another: exit code 3."""

    exit_code = ExitCode.CONFLICT


class OutsideError(TmsError):
    """A system outside the repository failed or refused (the Kubernetes API, Prometheus, a model
    repository, Triton): exit code 2, the message says which and what to check."""
