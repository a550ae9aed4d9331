"""The release workflow's two local steps (.github/workflows/release.yml), kept here so that the
tests run them as the workflow does.

  python3 tools/release.py version TAG        prints `version=X.Y.Z` when TAG is vX.Y.Z and
                                              pyproject.toml and tms_stack/__init__.py both say
                                              X.Y.Z; exits 1 naming the disagreement otherwise
  python3 tools/release.py stamp-image IMAGE  records IMAGE (REPOSITORY:X.Y.Z@sha256:...) in
                                              tms_stack/release.json, so the wheel built next
                                              knows the agent image published for its version

Both take --root DIR (default: this repository). Standard library only: runs before any install."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGEST_REF = re.compile(r"[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+"
                        r":([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@sha256:[0-9a-f]{64}")


def versions(root: Path) -> tuple[str, str]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    found = re.search(r'(?m)^__version__ = "([^"]+)"$', (root / "tms_stack" / "__init__.py").read_text())
    return pyproject, found.group(1) if found else "(none)"


def check_version(root: Path, tag: str) -> str:
    pyproject, package = versions(root)
    if pyproject != package:
        raise SystemExit(f"pyproject.toml says {pyproject} but tms_stack/__init__.py says {package}: make them agree")
    if tag != f"v{pyproject}":
        raise SystemExit(f"tag {tag!r} does not match the package version {pyproject}: tag v{pyproject}, "
                         "or bump the version in pyproject.toml and tms_stack/__init__.py first")
    return pyproject


def stamp_image(root: Path, image: str) -> None:
    pyproject, _ = versions(root)
    m = DIGEST_REF.fullmatch(image)
    if not m:
        raise SystemExit(f"{image!r}: expected REPOSITORY:{pyproject}@sha256:<64 hex>")
    if m.group(4) != pyproject:
        raise SystemExit(f"{image!r}: its tag is not the package version {pyproject}")
    (root / "tms_stack" / "release.json").write_text(json.dumps({"agentImage": image}) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("version").add_argument("tag")
    sub.add_parser("stamp-image").add_argument("image")
    args = parser.parse_args(argv)
    if args.step == "version":
        print(f"version={check_version(args.root, args.tag)}")
    else:
        stamp_image(args.root, args.image)
        print(f"tms_stack/release.json: agentImage {args.image}", file=sys.stderr)


if __name__ == "__main__":
    main()
