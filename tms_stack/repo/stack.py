"""Reading stack files (`Pulumi.<stack>.yaml`) into `StackSettings`, with positions for errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tms_stack.models.diagnostics import Diagnostic, TmsError
from tms_stack.models.stack import CONFIG_PREFIX, StackSettings
from tms_stack.repo.loader import validation_diagnostics
from tms_stack.repo.yamlio import Document, parse_file


def stack_file(root: Path, stack: str | None) -> Path | None:
    """`Pulumi.<stack>.yaml`; without a name, the only stack file there is (or none)."""
    if stack:
        path = root / f"Pulumi.{stack}.yaml"
        if not path.exists():
            raise TmsError(f"{path.name}: no such stack file (stacks here: {', '.join(stack_names(root)) or 'none'})")
        return path
    stacks = stack_names(root)
    if len(stacks) == 1:
        return root / f"Pulumi.{stacks[0]}.yaml"
    if len(stacks) > 1:
        raise TmsError(f"several stacks ({', '.join(stacks)}): choose one with --stack")
    return None


def stack_file_names(root: Path) -> list[str]:
    """Every `Pulumi.<name>.yaml` here, shard stacks' own files included."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def stack_names(root: Path) -> list[str]:
    """The fleets' stacks: every stack file except those of shard stacks. `pulumi stack init` of a
    shard writes a file of its own (Pulumi's encryption salt) that holds no settings of ours: the
    shard runs with its fleet's file (`--config-file`)."""
    shards = shard_declarations(root)
    return [n for n in stack_file_names(root) if n not in shards]


def shard_declarations(root: Path) -> dict[str, str]:
    """shard stack -> the stack whose file declares it in `tms-stack:shards.stacks`. Read without
    validation (an invalid file is `tms check`'s finding); a file that does not parse declares none."""
    out: dict[str, str] = {}
    for name in stack_file_names(root):
        path = root / f"Pulumi.{name}.yaml"
        if "shards" not in _text(path):
            continue
        try:
            data = parse_file(path, path.name).data
        except (TmsError, OSError):
            continue
        config = data.get("config") if isinstance(data, dict) else None
        shards = _plain(config.get(f"{CONFIG_PREFIX}shards")) if isinstance(config, dict) else None
        stacks = shards.get("stacks") if isinstance(shards, dict) else None
        for shard in stacks if isinstance(stacks, list) else []:
            if isinstance(shard, str) and shard != name:
                out.setdefault(shard, name)
    return out


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class StackRef:
    """A Pulumi stack and the stack file whose settings it runs with: its own, or for a shard
    stack its fleet's (the home stack, which declares it in `tms-stack:shards`)."""

    name: str
    home: str
    settings: StackSettings

    @property
    def members(self) -> list[str]:
        """Every stack of the fleet, the home stack first."""
        shards = self.settings.shards
        return [self.home, *(shards.stacks if shards else [])]

    @property
    def sharded(self) -> bool:
        return self.settings.shards is not None


def resolve_stack(root: Path, stack: str | None) -> StackRef:
    """The stack `stack` names (a fleet's stack file, or a shard that one declares); without a
    name, the only fleet stack here. Raises TmsError naming what exists."""
    shards = shard_declarations(root)
    if stack and stack in shards:
        home = shards[stack]
        return StackRef(stack, home, load_stack_settings(root, home))
    path = stack_file(root, stack)
    if path is None:
        return StackRef(stack or "", stack or "", StackSettings())
    home = path.name[len("Pulumi."):-len(".yaml")]
    return StackRef(home, home, load_stack_settings(root, home))


def load_stack_settings(root: Path, stack: str | None = None) -> StackSettings:
    """The settings `stack` runs with: its file's, or for a shard stack its home stack's."""
    if stack:
        stack = shard_declarations(root).get(stack, stack)
    path = stack_file(root, stack)
    if path is None:
        return StackSettings()
    display = path.name
    doc = parse_file(path, display)
    return settings_from_document(doc)


def settings_from_document(doc: Document) -> StackSettings:
    config = (doc.data or {}).get("config") or {} if isinstance(doc.data, dict) else {}
    if not isinstance(config, dict):
        raise TmsError(f"{doc.file}: `config` must be a mapping")
    ours = {k[len(CONFIG_PREFIX):]: _plain(v) for k, v in config.items()
            if isinstance(k, str) and k.startswith(CONFIG_PREFIX)}
    try:
        return StackSettings.model_validate(ours)
    except ValidationError as exc:
        # Re-key positions: the document path is ("config", "tms-stack:<key>", ...).
        shifted = Document(doc.file, {"config": config},
                           {k: v for k, v in doc.values.items()}, {k: v for k, v in doc.keys.items()})
        diags: list[Diagnostic] = []
        for d in validation_diagnostics(doc.file, _prefixed(shifted), StackSettings, exc):
            diags.append(d)
        raise TmsError("invalid stack settings:\n" + "\n".join(
            f"{d.location()}: {d.message}" for d in diags), diags) from None


def _plain(value: Any) -> Any:
    """Pulumi may store a config value under `value:`; accept both shapes."""
    return value["value"] if isinstance(value, dict) and set(value) == {"value"} else value


def _provider_flag(doc: Document, name: str) -> bool:
    config = doc.data.get("config") if isinstance(doc.data, dict) else None
    value = config.get(name) if isinstance(config, dict) else None
    return str(_plain(value)).lower() == "true"


def configmaps_mutable(doc: Document) -> bool:
    """Whether the stack file tells the Kubernetes provider to update ConfigMaps in place
    (`kubernetes:enableConfigMapMutable: "true"`); without it every lease edit deletes and
    recreates the lease's desired-models ConfigMap (docs/rendering.md, "Stack settings")."""
    return _provider_flag(doc, "kubernetes:enableConfigMapMutable")


def patch_force(doc: Document) -> bool:
    """Whether the stack file lets the Kubernetes provider take fields back from another field
    manager (`kubernetes:enablePatchForce: "true"`); without it a deploy after a hand edit
    (`kubectl edit`, `kubectl scale`) fails with a server-side apply conflict instead of repairing
    the drift (docs/lifecycle.md, "Drift")."""
    return _provider_flag(doc, "kubernetes:enablePatchForce")


def _prefixed(doc: Document) -> Document:
    """A view of the document where `config.tms-stack:key` reads as top-level `key`."""
    values: dict[tuple[Any, ...], Any] = {}
    keys: dict[tuple[Any, ...], Any] = {}
    for table, out in ((doc.values, values), (doc.keys, keys)):
        for path, pos in table.items():
            if len(path) >= 2 and path[0] == "config" and isinstance(path[1], str) and path[1].startswith(CONFIG_PREFIX):
                out[(path[1][len(CONFIG_PREFIX):],) + tuple(path[2:])] = pos
    data = {k[len(CONFIG_PREFIX):]: v for k, v in doc.data["config"].items()
            if isinstance(k, str) and k.startswith(CONFIG_PREFIX)}
    return Document(doc.file, data, values, keys)
