"""Whether a live object still holds what was rendered for it (pure): the comparison `tms drift`
makes (commands/drift.py), and the one the end-to-end tests use to say the API server holds every
rendered object (tests/e2e/example.py).

The live object may hold more than was rendered (defaults the API server fills in, status,
fields other controllers own); every rendered field must be there with the rendered value. Lists
are compared item by item and must have the same length (a container added by hand is drift).
Numbers and quantities compare by value, as the API server canonicalises them (`4` and `"4"`,
`0.5` and `"500m"`, `1Gi` and `1073741824`). A rendered `null` asks for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
}
_BY_LENGTH = sorted(_SUFFIXES, key=len, reverse=True)
# Where a difference list stops: one is enough to call an object drifted; a few say why.
MAX_REASONS = 5


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    for suffix in _BY_LENGTH:
        if value.endswith(suffix):
            try:
                return Decimal(value[: -len(suffix)]) * _SUFFIXES[suffix]
            except InvalidOperation:
                return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def quantity_equal(a: Any, b: Any) -> bool:
    """`4` vs `"4"`, `0.5` vs `"500m"`: the API server canonicalises numbers and quantities."""
    pa, pb = _quantity(a), _quantity(b)
    return pa is not None and pa == pb


def differences(rendered: Any, live: Any, path: str = "", most: int | None = None) -> list[str]:
    """Where `rendered` is not contained in `live`, as `path: what` lines (at most `most`)."""
    out: list[str] = []
    _walk(rendered, live, path, out, most)
    return out


def _walk(rendered: Any, live: Any, path: str, out: list[str], most: int | None) -> None:
    if most is not None and len(out) >= most:
        return
    if isinstance(rendered, dict):
        if not isinstance(live, dict):
            out.append(f"{path or '.'}: rendered a mapping, live has {live!r}")
            return
        for key, value in rendered.items():
            if value is None:
                continue
            if key not in live:
                out.append(f"{path}.{key}: missing on the server")
            else:
                _walk(value, live[key], f"{path}.{key}", out, most)
        return
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            shown = f"{len(live)} items" if isinstance(live, list) else repr(live)
            out.append(f"{path}: rendered {len(rendered)} items, live has {shown}")
            return
        for i, (r, lv) in enumerate(zip(rendered, live, strict=True)):
            _walk(r, lv, f"{path}[{i}]", out, most)
        return
    if rendered == live or str(rendered) == str(live) or quantity_equal(rendered, live):
        return
    out.append(f"{path}: rendered {rendered!r}, live {live!r}")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What of a rendered object the server must hold: not its type (the listing says it) or status."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}


@dataclass(frozen=True)
class Drift:
    """One rendered object the cluster no longer holds as rendered."""

    urn: str          # the Pulumi resource to refresh
    object: str       # Kind/namespace/name
    reasons: tuple[str, ...]


def compare(desired: list[tuple[str, str, dict[str, Any]]], live: dict[str, dict[str, Any] | None]) -> list[Drift]:
    """`desired`: (URN, object key, rendered object); `live`: object key -> the live object, None
    (or absent) when the cluster has none. The drifted ones, in `desired`'s order."""
    out = []
    for urn, key, obj in desired:
        found = live.get(key)
        if found is None:
            out.append(Drift(urn, key, ("missing from the cluster",)))
            continue
        reasons = differences(comparable(obj), found, most=MAX_REASONS)
        if reasons:
            out.append(Drift(urn, key, tuple(reasons)))
    return out
