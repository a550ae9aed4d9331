"""A model's config.pbtxt as the agent uses it: the `count` override (issue 11 #7) and the backend
check against the lease's declared backends (issue 21).

Triton's load API takes a `config` that *replaces* the model's config.pbtxt (verified with
tritonserver 2.51: an override holding only `instance_group` loaded the model with no inputs or
outputs). So the override is the model's own config.pbtxt, parsed with Triton's protobuf schema
(shipped with tritonclient), with every instance group's `count` set to the lease's `count`; a
model without config.pbtxt (a backend Triton auto-completes) gets one instance group. `count: 0`
means the model's own config: no override, except when the model runs with an earlier override:
Triton reloads a model whose files did not change only when given a config (verified: a plain
load after a count-3 load kept 3 instances), so going back to `count: 0` sends the model's own
config.pbtxt unchanged.

The file lives where tenant code can write (agent/safefile.py): it is read with checks, and no
error quotes its content (a parse error gives the line and column only).
"""

from __future__ import annotations

from pathlib import Path

from tms_stack.agent.safefile import UnsafeFile, read_text_checked
from tms_stack.models.diagnostics import UnreadableInput
from tms_stack.outside.backends import PLATFORMS

CONFIG = "config.pbtxt"
# Files Triton auto-completes a config from (no config.pbtxt), by backend.
DEFAULT_FILES = {"model.py": "python", "model.onnx": "onnxruntime", "model.plan": "tensorrt",
                 "model.pt": "pytorch", "model.savedmodel": "tensorflow", "model.graphdef": "tensorflow"}


class ModelConfigError(UnreadableInput):
    """A model's config.pbtxt cannot be read, overridden or accepted."""


def read_config(model_dir: Path) -> str | None:
    """The model's config.pbtxt text, checked; None when it has none."""
    if not (model_dir / CONFIG).exists() and not (model_dir / CONFIG).is_symlink():
        return None
    try:
        return read_text_checked(model_dir.parent, model_dir.name, CONFIG)
    except UnsafeFile as exc:
        raise ModelConfigError(f"refusing {exc}") from None


def _parse(name: str, text: str | None) -> object:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    if text is not None:
        try:
            text_format.Parse(text, config)
        except text_format.ParseError as exc:
            where = f" at line {exc.GetLine()}, column {exc.GetColumn()}" if exc.GetLine() else ""
            raise ModelConfigError(f"{name}/{CONFIG} is not a valid Triton model config{where}") from None
    return config


def count_override(name: str, text: str | None, count: int, overridden: bool = False) -> str | None:
    """The JSON config to load model `name` (config.pbtxt `text`, None when it has none) with
    `count` instances, or None for the model's own (its own config, explicitly, when it is
    `overridden` now)."""
    if count <= 0 and not overridden:
        return None
    from google.protobuf import json_format

    config = _parse(name, text)
    if not config.name:  # type: ignore[attr-defined]
        config.name = name  # type: ignore[attr-defined]
    if count <= 0:
        pass  # the model's own instance groups (or Triton's default when it has none)
    elif config.instance_group:  # type: ignore[attr-defined]
        for group in config.instance_group:  # type: ignore[attr-defined]
            group.count = count
    else:
        config.instance_group.add(count=count)  # type: ignore[attr-defined]
    return json_format.MessageToJson(config, indent=None)  # type: ignore[arg-type]


def model_backends(model_dir: Path, text: str | None) -> set[str] | None:
    """The backends the model needs (an ensemble: none of its own); None when it cannot be told."""
    if text is not None:
        config = _parse(model_dir.name, text)
        if config.backend:  # type: ignore[attr-defined]
            return {config.backend}  # type: ignore[attr-defined]
        if config.platform:  # type: ignore[attr-defined]
            backend = PLATFORMS.get(config.platform, config.platform)  # type: ignore[attr-defined]
            return {backend} if backend else set()
    found = {backend for version in model_dir.iterdir() if version.is_dir() and not version.is_symlink()
             for f, backend in DEFAULT_FILES.items() if (version / f).exists()}
    return found or None


def check_backends(model_dir: Path, text: str | None, declared: list[str] | None) -> None:
    """Refuse a model whose backend is not among the lease's declared backends (pool placement
    co-locates leases by them, so a wrong declaration must not load)."""
    if declared is None:
        return
    actual = model_backends(model_dir, text)
    if actual is None:
        raise ModelConfigError(f"{model_dir.name}: cannot tell its backend (no backend or platform in "
                               f"{CONFIG}), and the lease declares {sorted(declared)}")
    extra = actual - set(declared)
    if extra:
        raise ModelConfigError(f"{model_dir.name}: its config needs backend {sorted(extra)}, but the lease declares "
                               f"{sorted(declared)}")
