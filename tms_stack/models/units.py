"""Quantities as TMS wrote them: CPU (`2`, `1500m`), memory (`512Mi`), durations (`1h30m15s`).

Values are kept as the user's string (so files round-trip unchanged) and compared through
these parsers. Every parser raises ValueError with a message saying what is allowed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_MEM_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_MEM_RE = re.compile(r"^([1-9][0-9]{0,12}|0)(Ki|Mi|Gi|Ti)$")
_CPU_RE = re.compile(r"^(?:([0-9]{1,6})(?:\.([0-9]{1,3}))?|([0-9]{1,9})m)$")
_DURATION_RE = re.compile(r"^(?:([0-9]{1,6})d)?(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,9})s)?(?:([0-9]{1,9})ms)?(?:([0-9]{1,12})us)?$")


# A fleet writes the same few quantities thousands of times (`8Gi`, `4`, `1h`), and `tms check`
# parses each several times per lease: the parsers below remember their last few thousand texts
# (issue 27). Keyed by the text after str(), so 1 and True never share an answer.


def parse_memory(value: object, units: tuple[str, ...] = ("Ki", "Mi", "Gi", "Ti")) -> int:
    """Bytes in a memory quantity such as `512Mi`."""
    return _memory(str(value).strip(), tuple(units))


@lru_cache(maxsize=4096)
def _memory(text: str, units: tuple[str, ...]) -> int:
    match = _MEM_RE.fullmatch(text)
    if not match or match.group(2) not in units:
        raise ValueError(
            f"{text!r} is not a memory size: use a whole number followed by one of {', '.join(units)} (e.g. 512Mi)"
        )
    return int(match.group(1)) * _MEM_UNITS[match.group(2)]


def format_memory(num_bytes: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        size = _MEM_UNITS[unit]
        if num_bytes % size == 0 and num_bytes >= size:
            return f"{num_bytes // size}{unit}"
    return str(num_bytes)


def parse_cpu(value: object) -> int:
    """Millicores in a CPU quantity: `2`, `1.5` or `1500m`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a CPU quantity: use cores (e.g. 2) or millicores (e.g. 1500m)")
    return _cpu(str(value).strip())


@lru_cache(maxsize=4096)
def _cpu(text: str) -> int:
    match = _CPU_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a CPU quantity: use cores (e.g. 2 or 1.5) or millicores (e.g. 1500m)")
    whole, frac, milli = match.groups()
    if milli is not None:
        return int(milli)
    return int(whole) * 1000 + int((frac or "0").ljust(3, "0"))


def format_cpu(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def parse_duration(value: object) -> timedelta:
    """A Go-style duration such as `1h30m15s`, `30m`, `2d` or `200ms`."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration: use e.g. 8h, 30m, 1h30m15s or 2d")
    return _duration(str(value).strip())


@lru_cache(maxsize=4096)
def _duration(text: str) -> timedelta:
    match = _DURATION_RE.fullmatch(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: use e.g. 8h, 30m, 1h30m15s or 2d")
    d, h, m, s, ms, us = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s, milliseconds=ms, microseconds=us)


def format_duration(delta: timedelta) -> str:
    total_us = int(delta.total_seconds() * 1_000_000)
    if total_us == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000),
                       ("ms", 1000), ("us", 1)):
        if total_us >= size:
            parts.append(f"{total_us // size}{unit}")
            total_us %= size
    return "".join(parts)


def parse_queue_time_us(value: object) -> int:
    """Queue-time thresholds: TMS used microseconds as integers; we also accept `200ms`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a queue time: use microseconds (e.g. 10000) or a duration (e.g. 200ms)")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(parse_duration(text).total_seconds() * 1_000_000)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a queue time: use microseconds (e.g. 10000) or a duration (e.g. 200ms)"
        ) from None


def format_utc(ts: datetime) -> str:
    """`2026-12-01T18:00:00Z`; strftime's %Y drops the zero padding of years before 1000."""
    ts = ts.astimezone(UTC) if ts.tzinfo else ts
    return f"{ts.year:04d}-{ts:%m-%dT%H:%M:%S}Z"
