"""Stack files: every `Pulumi.<stack>.yaml` parses and its `tms-stack:` keys are valid."""

from __future__ import annotations

from tms_stack.models.diagnostics import UNREADABLE_RULE, Diagnostic, TmsError, UnreadableInput
from tms_stack.repo.loader import Repository
from tms_stack.repo.stack import settings_from_document, stack_names
from tms_stack.repo.yamlio import parse_file


def stack_rules(repo: Repository) -> list[Diagnostic]:
    """`tms check` validates every stack file: a typo such as `tms-stack:namspace` is an error at its
    line (it used to pass check and silently fall back to the default). Rule `stacksettings.schema`;
    a stack file that does not parse is reported as `yaml` (unreadable input, exit 2)."""
    found: list[Diagnostic] = []
    for name in stack_names(repo.root):
        path = repo.root / f"Pulumi.{name}.yaml"
        if path.is_symlink() or not path.is_file():
            found.append(Diagnostic(path.name, 0, 0, "files.layout",
                                    f"{path.name} is {'a symbolic link' if path.is_symlink() else 'not a file'}: "
                                    "stack files must be regular files (nothing was read)"))
            continue
        try:
            settings_from_document(parse_file(path, path.name))
        except UnreadableInput as exc:
            # Unreadable input (exit 2): reported as a `yaml` finding, never added to the repository.
            found.extend(exc.diagnostics or [Diagnostic(path.name, 0, 0, UNREADABLE_RULE, str(exc))])
        except TmsError as exc:
            found.extend(exc.diagnostics or [Diagnostic(path.name, 0, 0, "stacksettings.schema", str(exc))])
    return found
