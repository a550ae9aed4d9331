"""`tms allowlist add/list/rm`: tmsctl's Triton image allowlist, as edits of
policies/allowlist.yaml (an admin file: CODEOWNERS review applies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tms_stack.cli.common import (
    EXIT_USAGE,
    OutputOpt,
    WaitOpt,
    resolve_root,
)
from tms_stack.cli.common import (
    PorcelainOpt as Porcelain,
)
from tms_stack.cli.common import (
    RootOpt as Root,
)
from tms_stack.cli.tmsctl import (
    EXIT_REFUSED,
    Target,
    commit_hint,
    edit,
    edit_root,
    emit,
    fail,
    load,
    no_target,
    porcelain_word,
)
from tms_stack.models.policies import _image as validate
from tms_stack.repo.yamlio import dump_rt, load_rt

allow_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The Triton image allowlist.")


def register(app: typer.Typer) -> None:
    app.add_typer(allow_app, name="allowlist")


def _allowlist(root: Path) -> Path:
    path = root / "policies" / "allowlist.yaml"
    if not path.exists():
        fail("policies/allowlist.yaml does not exist (the Allowlist policy)", EXIT_REFUSED)
    return path


def _images(data: object) -> list:  # type: ignore[type-arg]
    """spec.images of the parsed allowlist (round-trip list: edits keep comments). A file of another
    shape is refused before anything is written, with what to run (not a KeyError)."""
    spec = data.get("spec") if isinstance(data, dict) else None
    if isinstance(spec, dict):
        images = spec.setdefault("images", [])
        if isinstance(images, list):
            return images
    fail("policies/allowlist.yaml is not an Allowlist with a `spec.images` list: fix it first "
         "(tms check policies/allowlist.yaml)", EXIT_REFUSED)


def _image(image: str) -> str:
    try:
        return validate(image)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


@allow_app.command("add")
def allow_add(image: str, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
              target: Target = None, wait: WaitOpt = None) -> None:
    """Allow a Triton image; an image already allowed is left as it is (TMS: no change)."""

    no_target(target)
    image = _image(image)
    root = edit_root(root, wait)
    path = _allowlist(root)
    data, rt = load_rt(path)
    images = _images(data)
    if image in images:
        emit(output, porcelain, lambda: [f"Added {image}", "(already allowed: nothing changed)"],
             lambda: [f"{porcelain_word('image', image)} state:Unchanged"],
             lambda: {"image": image, "changed": False})
        return
    images.append(image)
    written = edit(root, {path: dump_rt(data, rt)})
    emit(output, porcelain, lambda: [f"Added {image}", commit_hint(root, written)],
         lambda: [f"{porcelain_word('image', image)} state:Added"],
         lambda: {"image": image, "changed": True, "written": [str(p) for p in written]})


@allow_app.command("rm")
def allow_rm(image: str, root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
             target: Target = None, wait: WaitOpt = None) -> None:
    """Disallow an image; refused while a lease or pool uses it (the edit must pass check)."""

    no_target(target)
    root = edit_root(root, wait)
    path = _allowlist(root)
    data, rt = load_rt(path)
    images = _images(data)
    if image not in images:
        fail(f"{image} is not on the allowlist (tms allowlist list)", EXIT_REFUSED)
    images.remove(image)
    written = edit(root, {path: dump_rt(data, rt)})
    emit(output, porcelain, lambda: [f"Removed {image}", commit_hint(root, written)],
         lambda: [f"{porcelain_word('image', image)} state:Removed"],
         lambda: {"image": image, "removed": True, "written": [str(p) for p in written]})


@allow_app.command("list")
def allow_list(root: Root = None, porcelain: Porcelain = False, output: OutputOpt = "text",
               target: Target = None,
               verbose: Annotated[bool, typer.Option("--verbose", "-v", help="mark the default image")] = False,
               ) -> None:
    """The images leases and pools may use, one per line (as tmsctl prints them)."""
    no_target(target)
    spec = load(resolve_root(root)).allowlist.spec
    emit(output, porcelain,
         lambda: [i + ("  (default)" if verbose and i == spec.default else "") for i in spec.images],
         lambda: [porcelain_word("image", i) + (" default:true" if i == spec.default else "") for i in spec.images],
         lambda: {"default": spec.default, "images": spec.images})
