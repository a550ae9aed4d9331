"""Models from a volume repository (a PVC mounted read-only into the pod)."""

from __future__ import annotations

from pathlib import Path

from tms_stack.models.desired import VolumeSource
from tms_stack.outside.sources.base import FetchError


def fetch_volume(source: VolumeSource, dest: Path) -> None:
    """Link the model's files instead of copying them: the volume is read-only and shared, and
    Triton follows symlinks. Unloading removes only the links."""
    origin = Path(source.path)
    if not origin.is_dir():
        raise FetchError(f"{origin}: no such model directory in the mounted volume")
    for entry in origin.iterdir():
        (dest / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
