"""The Pulumi engine built from the vendored source snapshots (../shared/vendor, see its README).

The Go module proxy refuses the Pulumi engine modules (pkg/v3, the Python language host, the
Kubernetes provider v4), so tools/build_tools.py tries, in order: the proxy (its own pieces),
then the snapshots here, then ``TMS_PULUMI_BIN_DIR``. Kept apart from build_tools.py so that the
engine and the control-plane pieces evolve without touching one file.

Cache: ``bin/pulumi-vendored-<version>-<key>/`` where ``key`` hashes both tarballs' sha256, the
generator, the adjustments below, the flags and the Go version. Sources are unpacked into
``src/`` (writable copies: the provider needs four adjustments and a generated schema).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# tools/build_tools.py, passed in by build_vendored (it imports us; no import cycle)
bt: Any = None

VENDOR_README = "README.md"
PULUMI_TARBALL = "pulumi-src-1b59498.tar.xz"
PROVIDER_TARBALL = "pulumi-kubernetes-src-9497796.tar.xz"
SHA256 = {
    PULUMI_TARBALL: "e82e567db9c2090927606281c2f3e9f73d1e92d210c2b148a81e4a3794b49873",
    PROVIDER_TARBALL: "a8cbc38ca91af92ad9bbabe08d94635b51a8ee65b26ee7bac45d8d82f33cbf69",
}
# what the snapshots are (sdk/.version of the pulumi commit; the provider commit is after 4.32.0)
CLI_VERSION = "v3.260.0"
PROVIDER_VERSION = "4.32.0"
FLUXCD_SSA = "v0.78.0"
GENERATOR = Path(__file__).resolve().parent / "gobuild" / "pulumi-schema" / "main.go.in"
PROVIDER = "github.com/pulumi/pulumi-kubernetes/provider/v4"
# bump when the adjustments below change (part of the cache key)
ADJUSTMENTS_REVISION = "1"


def vendor_dir() -> Path | None:
    """TMS_VENDOR_DIR, else shared/vendor beside the checkout (CI: ../shared) or beside one of its
    parents (a worktree under wt/); None when absent (a fork)."""
    explicit = os.environ.get("TMS_VENDOR_DIR")
    repo = Path(__file__).resolve().parent.parent
    candidates = [Path(explicit)] if explicit else [p / "shared" / "vendor" for p in repo.parents]
    for d in candidates:
        if all((d / t).is_file() for t in SHA256):
            return d
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unpack(root: Path, tarball: Path, sha: str) -> Path:
    """Unpack once into src/<name>-<sha12>/ (verified), writable."""
    got = _sha256(tarball)
    if got != sha:
        raise bt.BuildError(f"{tarball}: sha256 {got}, expected {sha} (see {tarball.parent / VENDOR_README})")
    dest = root / "src" / f"{tarball.name.split('.tar')[0]}-{sha[:12]}"
    if (dest / ".unpacked").exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    bt.log(f"pulumi (vendored): unpacking {tarball.name}")
    with tarfile.open(tarball) as tf:
        tf.extractall(tmp, filter="data")
    for p in tmp.rglob("*"):
        if not p.is_symlink():  # the snapshot keeps some links to the testdata it leaves out
            p.chmod(p.stat().st_mode | 0o200)
    (tmp / ".unpacked").write_text(sha)
    shutil.move(str(tmp), dest)
    return dest


def _go(args: list[str], cwd: Path, env: dict[str, str], label: str, logfile: Path) -> None:
    bt.run_go(args, cwd=cwd, env=env, label=label, logfile=logfile)


def _adjust_provider(provider: Path, pulumi_src: Path, env: dict[str, str], logfile: Path) -> None:
    """The README's four adjustments, idempotent."""
    marker = provider / ".tms-adjusted"
    if marker.exists() and marker.read_text() == ADJUSTMENTS_REVISION:
        return
    # 2. an empty stand-in for the refused pulumi-dotnet module (only cmd/pulumi-gen-kubernetes
    # imports it, and we do not build that command)
    dotnet = provider / "tms-empty-dotnet"
    (dotnet / "codegen").mkdir(parents=True, exist_ok=True)
    (dotnet / "go.mod").write_text("module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3\n\ngo 1.24\n")
    (dotnet / "codegen" / "doc.go").write_text("// Package codegen is empty (see tools/build_pulumi.py).\npackage codegen\n")
    subprocess.run(
        ["go", "mod", "edit",
         f"-replace=github.com/pulumi/pulumi/pkg/v3={pulumi_src / 'pkg'}",
         f"-replace=github.com/pulumi/pulumi/sdk/v3={pulumi_src / 'sdk'}",
         "-dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4",
         "-replace=github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3=./tms-empty-dotnet",
         f"-replace=github.com/fluxcd/pkg/ssa=github.com/fluxcd/pkg/ssa@{FLUXCD_SSA}"],
        cwd=provider, env=env, check=True, capture_output=True, text=True,
    )
    # 4. the snapshot was written against pkg v3.246; 3.260 makes Provider a pointer
    schema_go = provider / "pkg" / "gen" / "schema.go"
    text = schema_go.read_text()
    if "Provider: pschema.ResourceSpec{" in text:
        schema_go.write_text(text.replace("Provider: pschema.ResourceSpec{", "Provider: &pschema.ResourceSpec{", 1))
    marker.write_text(ADJUSTMENTS_REVISION)


def _key(gover: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([SHA256, CLI_VERSION, PROVIDER_VERSION, FLUXCD_SSA, ADJUSTMENTS_REVISION, gover]).encode())
    h.update(GENERATOR.read_bytes())
    return h.hexdigest()[:12]


def build_vendored(root: Path, build_tools: ModuleType) -> Path:
    """Build pulumi, pulumi-language-python(-exec), pulumi-resource-kubernetes; return their dir."""
    global bt
    bt = build_tools
    vendor = vendor_dir()
    if vendor is None:
        raise bt.BuildError(
            "no vendored Pulumi sources at ../shared/vendor (or TMS_VENDOR_DIR) and the Go module proxy "
            "refuses the engine modules; set TMS_PULUMI_BIN_DIR to a directory with pulumi, "
            "pulumi-language-python and pulumi-resource-kubernetes")
    gover = bt.go_version()
    outdir = root / "bin" / f"pulumi-vendored-{CLI_VERSION}-{_key(gover)}"
    if (outdir / ".complete").exists():
        bt.log(f"pulumi (vendored) {CLI_VERSION} + kubernetes {PROVIDER_VERSION}: cached in {outdir}")
        return outdir
    with bt._Lock(root / "locks" / "pulumi-vendored.lock"):
        if (outdir / ".complete").exists():
            return outdir
        start = time.monotonic()
        env = bt.go_env(root)
        logfile = root / "logs" / f"pulumi-vendored-{CLI_VERSION}.log"
        bt.log(f"pulumi (vendored): building CLI {CLI_VERSION} and provider {PROVIDER_VERSION} with {gover} "
               f"from {vendor} (about 11 min cold on 2 cores; log: {logfile})")
        src = _unpack(root, vendor / PULUMI_TARBALL, SHA256[PULUMI_TARBALL])
        ksrc = _unpack(root, vendor / PROVIDER_TARBALL, SHA256[PROVIDER_TARBALL])
        provider = ksrc / "provider"
        (root / "bin").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pulumi-vendored-", dir=root / "bin"))
        try:
            ver = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
            bt.log("pulumi (vendored): step 1/4 the CLI")
            _go(["build", "-trimpath", "-v", "-o", str(tmp / "pulumi"), "-ldflags", f"-s -w -X {ver}={CLI_VERSION}",
                 "./cmd/pulumi"], src / "pkg", env, "pulumi (vendored CLI)", logfile)
            bt.log("pulumi (vendored): step 2/4 the Python language host")
            lh = src / "sdk" / "python" / "cmd"
            _go(["build", "-trimpath", "-v", "-o", str(tmp / "pulumi-language-python"),
                 "-ldflags", f"-s -w -X {ver}={CLI_VERSION}", "."],
                lh / "pulumi-language-python", env, "pulumi (language host)", logfile)
            shutil.copyfile(lh / "pulumi-language-python-exec", tmp / "pulumi-language-python-exec")
            (tmp / "pulumi-language-python-exec").chmod(0o755)
            bt.log("pulumi (vendored): step 3/4 the provider schema (our generator over provider/pkg/gen)")
            _adjust_provider(provider, src, env, logfile)
            gen_dir = provider / "cmd" / "tms-gen-schema"
            gen_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(GENERATOR, gen_dir / "main.go")
            swagger = bt._module_dir(root, bt.GOBUILD / "kubernetes", "k8s.io/kubernetes", bt.KUBERNETES_VERSION,
                                     "pulumi-kubernetes schema") / "api" / "openapi-spec" / "swagger.json"
            _go(["build", "-trimpath", "-o", str(tmp / "tms-gen-schema"), "./cmd/tms-gen-schema"],
                provider, env, "pulumi-kubernetes (schema generator)", logfile)
            cmd = provider / "cmd" / "pulumi-resource-kubernetes"
            subprocess.run([str(tmp / "tms-gen-schema"), str(swagger), PROVIDER_VERSION, str(cmd / "schema-embed.json")],
                           check=True)
            (tmp / "tms-gen-schema").unlink()
            shutil.copyfile(cmd / "terraform-mapping.json", cmd / "terraform-mapping-embed.json")
            bt.log("pulumi (vendored): step 4/4 the provider")
            _go(["build", "-trimpath", "-v", "-o", str(tmp / "pulumi-resource-kubernetes"),
                 "-ldflags", f"-s -w -X {PROVIDER}/pkg/version.Version={PROVIDER_VERSION}",
                 "./cmd/pulumi-resource-kubernetes"], provider, env, "pulumi-kubernetes (provider)", logfile)
            (tmp / ".complete").write_text(json.dumps({
                "cli": CLI_VERSION, "provider": PROVIDER_VERSION, "go": gover,
                "tarballs": SHA256, "seconds": round(time.monotonic() - start, 1)}))
            if outdir.exists():
                shutil.rmtree(outdir)
            tmp.rename(outdir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        bt.log(f"pulumi (vendored): built in {bt._fmt_s(time.monotonic() - start)} -> {outdir}")
        return outdir
