"""Pieces shared by every file kind: the envelope, names, quantities."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from tms_stack.models import units

# Every pattern is applied with fullmatch: `$` also matches before a trailing newline, and "x\n"
# passed as a name, then broke the deploy (422) and PromQL.
DNS1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# TMS: "May contain only lowercase alphanumeric characters (without spaces, hyphens are permitted)"
REPOSITORY_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _dns1035(value: str) -> str:
    if not DNS1035.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS-1035 label: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def _dns1123(value: str) -> str:
    if not DNS1123.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _repository_name(value: str) -> str:
    if not REPOSITORY_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a repository name: use lowercase letters, digits and '-' (TMS rule)"
        )
    return value


def _check(parser):  # type: ignore[no-untyped-def]
    def validate(value):  # type: ignore[no-untyped-def]
        # The parsers forgive surrounding blanks (command-line input); a file's value is kept as
        # written and must match whole, like every other string (no "32Gi\n").
        if isinstance(value, str) and value != value.strip():
            raise ValueError(f"{value!r}: remove the spaces or line breaks around the value")
        parser(value)
        return value

    return validate


def _gpu(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _whole_gpu(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} GPUs: GPUs are whole numbers, 0 or more")
    return value


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number or quantity")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns1035)]
OwnerName = Annotated[str, AfterValidator(_dns1123)]
RepositoryName = Annotated[str, AfterValidator(_repository_name)]
# Quantities keep the type the user wrote (`cpu: 4` stays an int) so files round-trip unchanged.
Cpu = Annotated[int | float | str, BeforeValidator(_no_bool), AfterValidator(_check(units.parse_cpu))]
Memory = Annotated[int | str, BeforeValidator(_no_bool), AfterValidator(_check(units.parse_memory))]
RepoSize = Annotated[
    int | str, BeforeValidator(_no_bool), AfterValidator(_check(lambda v: units.parse_memory(v, ("Mi", "Gi", "Ti"))))
]
Duration = Annotated[int | str, BeforeValidator(_no_bool), AfterValidator(_check(units.parse_duration))]
QueueTime = Annotated[
    str | int, BeforeValidator(_no_bool), AfterValidator(_check(units.parse_queue_time_us))
]
Gpu = Annotated[int, BeforeValidator(_gpu), AfterValidator(_whole_gpu)]
WholeNumber = Annotated[int, BeforeValidator(_no_bool)]
Percent = Annotated[int, BeforeValidator(_no_bool)]
# The one spelling of the type; tms_stack.API_VERSION is the value (a test keeps them equal).
ApiVersion = Literal["tms-stack/v1"]


class Metadata(Strict):
    name: str
