"""A lease model's `count` as Triton's load-time config override (issue 11 #7).

Triton's load API takes a `config` that *replaces* the model's config.pbtxt (verified with
tritonserver 2.51: an override holding only `instance_group` loaded the model with no inputs or
outputs). So the override is the model's own config.pbtxt, parsed with Triton's protobuf schema
(shipped with tritonclient), with every instance group's `count` set to the lease's `count`; a
model without config.pbtxt (a backend Triton auto-completes) gets one instance group. `count: 0`
means the model's own config: no override, except when the model runs with an earlier override:
Triton reloads a model whose files did not change only when given a config (verified: a plain
load after a count-3 load kept 3 instances), so going back to `count: 0` sends the model's own
config.pbtxt unchanged.
"""

from __future__ import annotations

from pathlib import Path


class ModelConfigError(Exception):
    pass


def count_override(model_dir: Path, count: int, overridden: bool = False) -> str | None:
    """The JSON config to load `model_dir` with `count` instances, or None for the model's own
    (its own config, explicitly, when it is `overridden` now)."""
    if count <= 0 and not overridden:
        return None
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    path = model_dir / "config.pbtxt"
    if path.is_file():
        try:
            text_format.Parse(path.read_text(encoding="utf-8"), config)
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise ModelConfigError(f"cannot apply count {count}: {model_dir.name}/config.pbtxt: {exc}") from None
    if not config.name:
        config.name = model_dir.name
    if count <= 0:
        pass  # the model's own instance groups (or Triton's default when it has none)
    elif config.instance_group:
        for group in config.instance_group:
            group.count = count
    else:
        config.instance_group.add(count=count)
    return json_format.MessageToJson(config, indent=None)
