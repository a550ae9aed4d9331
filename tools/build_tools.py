#!/usr/bin/env python3
"""Build (once) and cache the binaries the end-to-end suite needs, from Go modules.

    python3 tools/build_tools.py                 # everything; prints where each piece is
    python3 tools/build_tools.py kube-apiserver etcd crds
    python3 tools/build_tools.py --env           # shell `export` lines (PATH, TMS_*)
    python3 tools/build_tools.py --json          # machine-readable result

Pieces (see docs/real-engine.md for versions, cache layout and timings):

  kube-apiserver  k8s.io/kubernetes cmd/kube-apiserver   wrapper module tools/gobuild/kubernetes
  etcd            go.etcd.io/etcd/server/v3 etcdmain     wrapper module tools/gobuild/etcd
  crds            PodMonitor + PrometheusRule CRDs from the prometheus-operator module,
                  the Certificate CRD from the cert-manager module
                  (tools/gobuild/prometheus-operator; nothing is compiled)
  pulumi          the Pulumi CLI + pulumi-language-python, version = `pulumi==` in pyproject.toml
  pulumi-kubernetes
                  pulumi-resource-kubernetes, version = `pulumi-kubernetes==` in pyproject.toml

Everything lives under ``${TMS_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tms-stack}``: its own
GOMODCACHE (``gomod/``) and GOCACHE (``go-build/``), so deleting that one directory gives a truly
cold build, and the binaries in ``bin/<piece>-<version>-<key>/`` where ``key`` hashes the wrapper
module (go.mod, go.sum, *.go), the build flags and the Go version: a second run finds them and
returns at once. Builds of one piece are serialised with a lock file, so concurrent callers
(pytest-xdist workers) wait for the first instead of building twice.

A Pulumi CLI, language host or provider that is already installed is used instead of building
one when ``TMS_PULUMI_BIN_DIR`` names a directory holding ``pulumi``, ``pulumi-language-python``
and ``pulumi-resource-kubernetes`` (how a CI that installs the Pulumi CLI itself plugs in).

Only the standard library is used, so this runs with any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOBUILD = ROOT / "tools" / "gobuild"

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
# nektos/act: runs the repository's own workflow files in tests/e2e/workflows/ (host mode, no daemon)
ACT_VERSION = "v0.2.89"
# kwok's "fast" stages (kustomize/stage/{node,pod}/fast in the module): nodes become Ready at
# once, pods bound to them become Running/Ready at once, and deleted pods go away at once.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
CRD_FILES = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
# cert-manager's Certificate CRD: rendered TLS certificates (stack setting `tls`) are checked against it.
CERT_MANAGER_VERSION = "v1.21.2"
CERT_MANAGER_CRD = "cert-manager.io_certificates.yaml"

PROGRESS_EVERY_S = 20.0


class BuildError(RuntimeError):
    """A piece could not be built; the message carries the tool's own error lines."""


def cache_root() -> Path:
    explicit = os.environ.get("TMS_TOOLS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tms-stack"


def log(msg: str) -> None:
    print(f"[tms-tools] {msg}", file=sys.stderr, flush=True)


def _fmt_s(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


# ---------------------------------------------------------------------------------------------
# versions

def pyproject_versions(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """`pulumi` and `pulumi-kubernetes` pins from pyproject.toml (``==X.Y.Z``), with a ``v``."""
    data = tomllib.loads(pyproject.read_text())
    deps = list(data.get("project", {}).get("dependencies", []))
    found: dict[str, str] = {}
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([0-9][0-9A-Za-z.+-]*)\s*", dep)
        if m and m.group(1).lower() in ("pulumi", "pulumi-kubernetes"):
            found[m.group(1).lower()] = "v" + m.group(2)
    for name in ("pulumi", "pulumi-kubernetes"):
        if name not in found:
            raise BuildError(f"pyproject.toml: no exact pin `{name}==X.Y.Z` in [project].dependencies")
    return found


def go_version() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError("`go` is not on PATH (a Go toolchain >= 1.24 is needed to build the e2e tools)")
    return subprocess.run([go, "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------
# go invocations with progress

def go_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOCACHE=str(root / "go-build"),
        GOMODCACHE=str(root / "gomod"),
        GOFLAGS="-mod=mod -buildvcs=false",
        # The checksum database is not reachable from the build machines; go.sum files are
        # committed for the wrapper modules, so downloads are still verified against them.
        GOSUMDB="off",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def run_go(
    args: list[str], *, cwd: Path, env: dict[str, str], label: str, logfile: Path, count_compiled: bool = True
) -> str:
    """Run `go ...`, streaming its output to ``logfile`` and a progress line every few seconds."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    counts = {"compiled": 0, "downloaded": 0}
    last_lines: list[str] = []
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            log(
                f"{label}: {_fmt_s(time.monotonic() - start)} elapsed, "
                f"{counts['downloaded']} modules downloaded, {counts['compiled']} packages compiled "
                f"(log: {logfile})"
            )

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    with logfile.open("a") as fh:
        fh.write(f"$ (cd {cwd} && go {' '.join(args)})\n")
        fh.flush()
        proc = subprocess.Popen(
            ["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            line = line.rstrip("\n")
            if line.startswith("go: downloading"):
                counts["downloaded"] += 1
            elif count_compiled and line and not line.startswith(("go:", "#", " ", "\t")):
                counts["compiled"] += 1
            last_lines.append(line)
            del last_lines[:-40]
        rc = proc.wait()
    done.set()
    elapsed = time.monotonic() - start
    if rc != 0:
        errors = [ln for ln in last_lines if ln and not ln.startswith("go: downloading")]
        raise BuildError(
            f"{label}: `go {' '.join(args[:2])} ...` failed (exit {rc}) after {_fmt_s(elapsed)}:\n  "
            + "\n  ".join(errors[-15:])
            + f"\n  (full log: {logfile})"
        )
    log(f"{label}: done in {_fmt_s(elapsed)} ({counts['downloaded']} modules downloaded, "
        f"{counts['compiled']} packages compiled)")
    return "\n".join(last_lines)


# ---------------------------------------------------------------------------------------------
# pieces

@dataclasses.dataclass(frozen=True)
class GoPiece:
    name: str
    version: str
    module_dir: Path  # the wrapper module (committed, or generated into the cache)
    binaries: dict[str, str]  # output file name -> package path ("." for the wrapper's main)
    ldflags: str = ""
    # files copied next to the binaries: output name -> (module path, file inside the module)
    extra_files: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def key(self, gover: str) -> str:
        h = hashlib.sha256()
        for p in sorted(self.module_dir.iterdir()):
            if p.is_file() and (p.suffix in (".mod", ".sum", ".go")):
                h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        h.update(json.dumps([self.binaries, self.ldflags, self.extra_files, gover, sys.platform]).encode())
        return h.hexdigest()[:12]


def kubernetes_piece() -> GoPiece:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    )
    return GoPiece(
        name="kube-apiserver",
        version=KUBERNETES_VERSION,
        module_dir=GOBUILD / "kubernetes",
        binaries={
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            # the controllers that turn Deployments into pods and pods into endpoints, the
            # garbage collector (Pulumi deletes with foreground propagation) and namespaces
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            # binds pods to the fake nodes that kwok keeps Ready
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        },
        ldflags=ldflags,
    )


def etcd_piece() -> GoPiece:
    return GoPiece(
        name="etcd",
        version=ETCD_VERSION,
        module_dir=GOBUILD / "etcd",
        binaries={"etcd": "."},
        ldflags="-s -w",
    )




def kwok_piece() -> GoPiece:
    return GoPiece(
        name="kwok",
        version=KWOK_VERSION,
        module_dir=GOBUILD / "kwok",
        binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        ldflags="-s -w",
    )


def act_piece() -> GoPiece:
    return GoPiece(
        name="act",
        version=ACT_VERSION,
        module_dir=GOBUILD / "act",
        binaries={"act": "github.com/nektos/act"},
        ldflags=f"-s -w -X main.version={ACT_VERSION.lstrip('v')}",
    )


def _module_dir(root: Path, wrapper: Path, module: str, version: str, label: str) -> Path:
    """Download ``module`` as pinned (and verified by go.sum) in ``wrapper``; return its dir."""
    env = go_env(root)
    out = subprocess.run(
        ["go", "mod", "download", "-json", module], cwd=wrapper, env=env, capture_output=True, text=True
    )
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        info = {"Error": out.stderr.strip()}
    if out.returncode != 0 or info.get("Error"):
        raise BuildError(f"{label}: go mod download {module} failed: {info.get('Error') or out.stderr.strip()}")
    if info.get("Version") != version:
        raise BuildError(f"{label}: got {module}@{info.get('Version')}, expected {version}")
    return Path(info["Dir"])


def kwok_stages(root: Path) -> Path:
    """One multi-document YAML with kwok's fast node and pod stages, for ``kwok --config``."""
    out = root / "kwok" / f"stages-{KWOK_VERSION}.yaml"
    if out.exists():
        return out
    src = _module_dir(root, GOBUILD / "kwok", "sigs.k8s.io/kwok", KWOK_VERSION, "kwok stages")
    docs = [f"# {f} from sigs.k8s.io/kwok@{KWOK_VERSION}\n" + (src / f).read_text().strip() + "\n" for f in KWOK_STAGE_FILES]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("---\n".join(docs))
    tmp.rename(out)
    log(f"kwok stages: {out}")
    return out


def _generated_module(root: Path, template: Path, name: str, version: str) -> Path:
    """Copy a wrapper module template into the cache with the version filled in."""
    dest = root / "src" / f"{name}-{version}"
    dest.mkdir(parents=True, exist_ok=True)
    for p in template.parent.iterdir():
        if p.suffix == ".go" or p.name == "go.sum":
            shutil.copy2(p, dest / p.name)
    text = template.read_text().replace("@VERSION@", version)
    if not (dest / "go.mod").exists() or (dest / "go.mod").read_text() != text:
        (dest / "go.mod").write_text(text)
    return dest


def pulumi_piece(root: Path, versions: dict[str, str]) -> GoPiece:
    v = versions["pulumi"]
    mod = _generated_module(root, GOBUILD / "pulumi" / "go.mod.in", "pulumi", v)
    return GoPiece(
        name="pulumi",
        version=v,
        module_dir=mod,
        binaries={
            "pulumi": "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
            "pulumi-language-python": "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3",
        },
        ldflags=f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={v}",
        # the language host runs this Python script (it is not part of its own Go module)
        extra_files={
            "pulumi-language-python-exec": ("github.com/pulumi/pulumi/sdk/v3", "python/cmd/pulumi-language-python-exec")
        },
    )


PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"


def _provider_source(root: Path, version: str) -> Path:
    """A writable copy of the provider module with the files its `go generate` step writes.

    cmd/pulumi-resource-kubernetes embeds schema-embed.json and terraform-mapping-embed.json,
    which upstream's generate.go derives from the committed schema.json (version set) and
    terraform-mapping.json and which are git-ignored, so no module zip holds them. This is
    that step, in Python (the same JSON re-serialised; the provider only unmarshals it).
    """
    dest = root / "src" / f"pulumi-kubernetes-{version}" / "provider"
    cmd = dest / "cmd" / "pulumi-resource-kubernetes"
    if (cmd / "schema-embed.json").exists():
        return dest
    log(f"pulumi-kubernetes: downloading {PROVIDER_MODULE}@{version}")
    env = go_env(root)
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{PROVIDER_MODULE}@{version}"],
        cwd=root, env={**env, "GO111MODULE": "on", "GOFLAGS": ""}, capture_output=True, text=True,
    )
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        info = {"Error": out.stderr.strip()}
    if out.returncode != 0 or info.get("Error"):
        raise BuildError(f"pulumi-kubernetes: go mod download {PROVIDER_MODULE}@{version} failed: "
                         f"{info.get('Error') or out.stderr.strip()}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(info["Dir"], dest)
    for p in dest.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    schema = json.loads((cmd / "schema.json").read_text())
    schema["version"] = version.lstrip("v")
    (cmd / "terraform-mapping-embed.json").write_text(
        json.dumps(json.loads((cmd / "terraform-mapping.json").read_text()), separators=(",", ":")))
    (cmd / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    return dest


def pulumi_kubernetes_piece(root: Path, versions: dict[str, str]) -> GoPiece:
    v = versions["pulumi-kubernetes"]
    src = _provider_source(root, v)
    mod = _generated_module(root, GOBUILD / "pulumi-kubernetes" / "go.mod.in", "pulumi-kubernetes", v)
    assert src.parent == mod  # go.mod.in: replace ... => ./provider
    return GoPiece(
        name="pulumi-kubernetes",
        version=v,
        module_dir=mod,
        binaries={"pulumi-resource-kubernetes": f"{PROVIDER_MODULE}/cmd/pulumi-resource-kubernetes"},
        ldflags=f"-s -w -X {PROVIDER_MODULE}/pkg/version.Version={v.lstrip('v')}",
    )


class _Lock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = self.path.open("w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build holding {self.path} ...")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def build_go_piece(root: Path, piece: GoPiece) -> Path:
    """Return the directory holding the piece's binaries, building them if not cached."""
    gover = go_version()
    outdir = root / "bin" / f"{piece.name}-{piece.version}-{piece.key(gover)}"
    marker = outdir / ".complete"
    if marker.exists():
        log(f"{piece.name} {piece.version}: cached in {outdir}")
        return outdir
    with _Lock(root / "locks" / f"{piece.name}.lock"):
        if marker.exists():
            log(f"{piece.name} {piece.version}: cached in {outdir} (built by a concurrent run)")
            return outdir
        env = go_env(root)
        logfile = root / "logs" / f"{piece.name}-{piece.version}.log"
        log(f"{piece.name} {piece.version}: building with {gover} in {piece.module_dir} (log: {logfile})")
        start = time.monotonic()
        log(f"{piece.name}: step 1/2 resolve and download modules")
        pkgs = [p for p in piece.binaries.values() if p != "."] or ["."]
        run_go(["list", "-deps", "-f", "{{.ImportPath}}", *pkgs], cwd=piece.module_dir, env=env,
               label=f"{piece.name} (modules)", logfile=logfile, count_compiled=False)
        (root / "bin").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{piece.name}-", dir=root / "bin"))
        try:
            for i, (binary, pkg) in enumerate(piece.binaries.items(), start=1):
                log(f"{piece.name}: step 2/2 compile {binary} ({i}/{len(piece.binaries)}) from {pkg}")
                args = ["build", "-trimpath", "-v", "-o", str(tmp / binary)]
                if piece.ldflags:
                    args += ["-ldflags", piece.ldflags]
                run_go([*args, pkg], cwd=piece.module_dir, env=env, label=f"{piece.name} ({binary})", logfile=logfile)
            for name, (module, rel) in piece.extra_files.items():
                src = _module_dir(root, piece.module_dir, module, piece.version, piece.name) / rel
                shutil.copyfile(src, tmp / name)
                (tmp / name).chmod(0o755)
                log(f"{piece.name}: {name} from {module}@{piece.version}/{rel}")
            (tmp / ".complete").write_text(
                json.dumps({"version": piece.version, "go": gover, "seconds": round(time.monotonic() - start, 1)})
            )
            if outdir.exists():
                shutil.rmtree(outdir)
            tmp.rename(outdir)
            for stale in (root / "bin").glob(f"{piece.name}-v*"):  # not "pulumi-kubernetes-*" for "pulumi"
                if stale != outdir and stale.is_dir():
                    log(f"{piece.name}: removing the superseded build {stale}")
                    shutil.rmtree(stale, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        log(f"{piece.name} {piece.version}: built in {_fmt_s(time.monotonic() - start)} -> {outdir}")
        return outdir


def fetch_cert_manager_crd(root: Path) -> Path:
    """Copy the Certificate CRD out of the cert-manager module (deploy/crds/)."""
    out = root / "crds" / f"cert-manager-{CERT_MANAGER_VERSION}" / CERT_MANAGER_CRD
    if out.exists():
        log(f"cert-manager crd {CERT_MANAGER_VERSION}: cached in {out}")
        return out
    with _Lock(root / "locks" / "crds-cert-manager.lock"):
        log(f"crds: downloading github.com/cert-manager/cert-manager@{CERT_MANAGER_VERSION}")
        mod = _module_dir(root, GOBUILD / "cert-manager", "github.com/cert-manager/cert-manager",
                          CERT_MANAGER_VERSION, "cert-manager crd")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mod / "deploy" / "crds" / CERT_MANAGER_CRD, out)
        log(f"cert-manager crd {CERT_MANAGER_VERSION}: {CERT_MANAGER_CRD} -> {out}")
        return out


def fetch_crds(root: Path) -> Path:
    """Copy the PodMonitor and PrometheusRule CRDs out of the prometheus-operator module."""
    outdir = root / "crds" / f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}"
    if all((outdir / f).exists() for f in CRD_FILES):
        log(f"crds {PROMETHEUS_OPERATOR_VERSION}: cached in {outdir}")
        return outdir
    with _Lock(root / "locks" / "crds.lock"):
        log(f"crds: downloading github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}")
        mod = _module_dir(root, GOBUILD / "prometheus-operator", "github.com/prometheus-operator/prometheus-operator",
                          PROMETHEUS_OPERATOR_VERSION, "crds")
        src = mod / "example" / "prometheus-operator-crd"
        outdir.mkdir(parents=True, exist_ok=True)
        for f in CRD_FILES:
            shutil.copyfile(src / f, outdir / f)
        log(f"crds {PROMETHEUS_OPERATOR_VERSION}: {', '.join(CRD_FILES)} -> {outdir}")
        return outdir


# ---------------------------------------------------------------------------------------------
# the Pulumi engine: provided, cached, or built

PULUMI_BINARIES = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")


def provided_pulumi_dir() -> Path | None:
    d = os.environ.get("TMS_PULUMI_BIN_DIR")
    if not d:
        return None
    path = Path(d)
    missing = [b for b in PULUMI_BINARIES if not os.access(path / b, os.X_OK)]
    if missing:
        raise BuildError(f"TMS_PULUMI_BIN_DIR={d} lacks {', '.join(missing)}")
    return path


def build_pulumi(root: Path) -> dict[str, Path]:
    """The Go module proxy first, then the vendored sources (tools/build_pulumi.py), then
    TMS_PULUMI_BIN_DIR."""
    errors: list[str] = []
    try:
        return _build_pulumi_from_proxy(root)
    except BuildError as e:
        errors.append(f"from the Go module proxy: {e}")
    try:
        try:
            from tools import build_pulumi as vendored  # imported as the package `tools`
        except ImportError:
            import build_pulumi as vendored  # run as a script: tools/ is on sys.path
        log("pulumi: the Go module proxy refuses the engine; building from the vendored sources")
        d = vendored.build_vendored(root, sys.modules[__name__])
        return {b: d for b in PULUMI_BINARIES}
    except BuildError as e:
        errors.append(f"from the vendored sources: {e}")
    provided = provided_pulumi_dir()
    if provided:
        log(f"pulumi: using the binaries in TMS_PULUMI_BIN_DIR={provided}")
        return {b: provided for b in PULUMI_BINARIES}
    raise BuildError("\n".join(errors))


def _build_pulumi_from_proxy(root: Path) -> dict[str, Path]:
    versions = pyproject_versions()
    built: dict[str, Path] = {}
    errors: list[str] = []
    for make in (pulumi_piece, pulumi_kubernetes_piece):
        try:
            piece = make(root, versions)
            d = build_go_piece(root, piece)
        except BuildError as e:
            errors.append(str(e))
            continue
        built.update({b: d for b in piece.binaries})
    if errors:
        raise BuildError("\n".join(errors))
    return built


# ---------------------------------------------------------------------------------------------

PIECES = ("kube-apiserver", "etcd", "kwok", "crds", "pulumi", "kube-node", "act")


def build(pieces: list[str] | tuple[str, ...] = PIECES, *, keep_going: bool = True) -> dict[str, dict]:
    """Build/cache the named pieces; returns ``{piece: {"path": ..} | {"error": ..}}``."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict] = {}
    for piece in pieces:
        try:
            if piece == "kube-apiserver":
                d = build_go_piece(root, kubernetes_piece())
                result[piece] = {"path": str(d / "kube-apiserver"),
                                 "controller_manager": str(d / "kube-controller-manager"),
                                 "scheduler": str(d / "kube-scheduler")}
            elif piece == "kwok":
                d = build_go_piece(root, kwok_piece())
                result[piece] = {"path": str(d / "kwok"), "stages": str(kwok_stages(root))}
            elif piece == "etcd":
                result[piece] = {"path": str(build_go_piece(root, etcd_piece()) / "etcd")}
            elif piece == "crds":
                d = fetch_crds(root)
                result[piece] = {"path": str(d), "files": [str(d / f) for f in CRD_FILES]
                                 + [str(fetch_cert_manager_crd(root))]}
            elif piece == "act":
                result[piece] = {"path": str(build_go_piece(root, act_piece()) / "act")}
            elif piece == "kube-node":  # kubelet + kube-proxy: tools/build_node.py
                from build_node import build_node

                result[piece] = build_node(root)
            elif piece == "pulumi":
                dirs = build_pulumi(root)
                result[piece] = {"path": str(dirs["pulumi"] / "pulumi"),
                                 "bin_dirs": sorted({str(p) for p in dirs.values()})}
            else:
                raise BuildError(f"unknown piece {piece!r}; known: {', '.join(PIECES)}")
        except BuildError as e:
            log(f"FAILED {piece}: {e}")
            result[piece] = {"error": str(e)}
            if not keep_going:
                break
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pieces", nargs="*", default=list(PIECES), help=f"default: {' '.join(PIECES)}")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--env", action="store_true", help="print shell export lines on stdout")
    args = ap.parse_args(argv)
    start = time.monotonic()
    result = build(args.pieces)
    log(f"total {_fmt_s(time.monotonic() - start)}; cache: {cache_root()}")
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.env:
        dirs: list[str] = []
        for piece, r in result.items():
            if "error" in r:
                continue
            for d in r.get("bin_dirs", [str(Path(r["path"]).parent)] if piece != "crds" else []):
                if d not in dirs:
                    dirs.append(d)
            if piece == "crds":
                print(f"export TMS_CRDS_DIR={r['path']}")
        if dirs:
            print(f"export PATH={':'.join(dirs)}:$PATH")
    else:
        for piece, r in result.items():
            print(f"{piece}: {r.get('path') or 'ERROR ' + r['error']}")
    return 1 if any("error" in r for r in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
