"""The node's Triton and agent images, built here without a registry or a daemon.

    python3 tools/build_images.py          # build or reuse both, print their tar paths

Three cached layers (docs/real-engine.md, "Images"):

- **base**: a minimal Debian root filesystem (mmdebstrap, variant ``essential``) with Python 3.11,
  libpython3.11 (the Python backend stub links it) and numpy (the stub's models import it),
  plus the ``tms`` user (uid 1000) the agent runs as. The suite and the mirrors are this
  machine's own (its codename and its apt sources file): no mirror address is written here.
- **triton**: the ``tritonserver`` shipped in the nvidia-pytriton wheel (the version this
  virtualenv has installed, pinned in pyproject.toml) laid out as NVIDIA's image lays it out:
  ``/opt/tritonserver/{bin,lib,backends}`` with the Python backend stub for Python 3.11.
- **agent**: the project's runtime dependencies (pip, from the index pip is configured with)
  and the project wheel, under ``/usr/local/lib/python3.11/dist-packages`` with a ``tms``
  launcher: what docker/agent.Dockerfile builds.

Each layer is an uncompressed tar under ``<cache>/images/layers/`` named by a key of its
inputs; an image is an OCI-layout tar (tools/images/oci.py) named by its layers' keys, and its
reference carries that key, so a changed agent is never confused with a cached one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "images"))

import build_tools  # noqa: E402  (a sibling script, not a package)
import oci  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYER_FORMAT = "1"  # bump when the way a layer is made changes
BASE_PACKAGES = ["python3", "libpython3.11", "python3-numpy", "libstdc++6", "zlib1g", "ca-certificates"]
PY = "python3.11"
SITE = f"/usr/local/lib/{PY}/dist-packages"
TMS_UID = 1000
LAUNCHER = "#!/usr/bin/python3\nimport sys\n\nfrom tms_stack.cli import main\n\nsys.exit(main())\n"
TRITON_ENV = ["PATH=/opt/tritonserver/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "LD_LIBRARY_PATH=/opt/tritonserver/lib"]


def _h(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _apt_sources() -> Path:
    for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if p.exists() and p.read_text().strip():
            return p
    raise build_tools.BuildError("no apt sources on this machine (/etc/apt/sources.list.d/debian.sources)")


def _codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise build_tools.BuildError("/etc/os-release names no VERSION_CODENAME")


def _run(argv: list[str], what: str, **kw) -> None:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).splitlines()[-25:])
        raise build_tools.BuildError(f"{what} failed (exit {p.returncode}):\n{tail}")
    build_tools.log(f"  {what}: {build_tools._fmt_s(time.monotonic() - start)}")


def _layer(root: Path, name: str, key: str, make) -> Path:  # type: ignore[no-untyped-def]
    """The cached layer tar ``<name>-<key>.tar``, made by ``make(dest)`` when missing."""
    out = root / "images" / "layers" / f"{name}-{key}.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{name}-*.tar"):
        stale.unlink()
    build_tools.log(f"image layer {name}: building ...")
    start = time.monotonic()
    tmp = out.with_suffix(".part")
    make(tmp)
    tmp.rename(out)
    build_tools.log(f"image layer {name}: {out.stat().st_size >> 20} MiB in "
                    f"{build_tools._fmt_s(time.monotonic() - start)}")
    return out


def base_key() -> str:
    sources = _apt_sources()
    return _h(LAYER_FORMAT, _codename(), sources.read_bytes(), *BASE_PACKAGES)


def _make_base(dest: Path) -> None:
    if not shutil.which("mmdebstrap"):
        raise build_tools.BuildError("mmdebstrap is missing: run scripts/deps.d/60-node.sh")
    hook = (f'echo "tms:x:{TMS_UID}:{TMS_UID}::/home/tms:/usr/sbin/nologin" >> "$1/etc/passwd"; '
            f'echo "tms:x:{TMS_UID}:" >> "$1/etc/group"; '
            f'mkdir -p "$1/home/tms" && chown {TMS_UID}:{TMS_UID} "$1/home/tms"')
    argv = ["mmdebstrap", "--variant=essential", f"--include={','.join(BASE_PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
            f"--customize-hook={hook}", "--format=tar", _codename(), str(dest), str(_apt_sources())]
    # mmdebstrap's own "I: ..." lines are the progress of the longest step: let them through
    start = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise build_tools.BuildError(f"mmdebstrap failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    build_tools.log(f"  mmdebstrap {_codename()} + {' '.join(BASE_PACKAGES)}: "
                    f"{build_tools._fmt_s(time.monotonic() - start)}")


def _pytriton_site() -> Path:
    import pytriton  # the wheel this virtualenv installed (pyproject.toml pins it)

    return Path(pytriton.__file__).resolve().parent.parent


def triton_key() -> str:
    return _h(LAYER_FORMAT, "nvidia-pytriton", importlib.metadata.version("nvidia-pytriton"), PY)


def _make_triton(dest: Path) -> None:
    site = _pytriton_site()
    home = site / "pytriton" / "tritonserver"
    with tempfile.TemporaryDirectory(prefix="tms-img-") as t:
        opt = Path(t) / "opt" / "tritonserver"
        (opt / "bin").mkdir(parents=True)
        shutil.copy2(home / "bin" / "tritonserver", opt / "bin" / "tritonserver")
        # the binary's RPATH is ${ORIGIN}/../lib: the wheel's bundled libraries go there
        shutil.copytree(site / "nvidia_pytriton.libs", opt / "lib")
        shutil.copytree(home / "backends", opt / "backends",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(home / "python_backend_stubs" / PY.removeprefix("python") / "triton_python_backend_stub",
                     opt / "backends" / "python" / "triton_python_backend_stub")
        shutil.copytree(home / "caches", opt / "caches")
        dest.write_bytes(oci.layer_from({}, {"/opt/tritonserver": opt}))


def _runtime_deps() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def deps_key() -> str:
    return _h(LAYER_FORMAT, PY, *_runtime_deps())


def _make_deps(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tms-img-") as t:
        target = Path(t) / SITE.lstrip("/")
        _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
              "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
              "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
              "--platform", "manylinux_2_28_x86_64", "--platform", "linux_x86_64",
              "--target", str(target), *_runtime_deps()], "pip install the runtime dependencies")
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts with this host's shebang
        dest.write_bytes(oci.layer_from({}, {SITE: target}))


def _project_files() -> list[Path]:
    files = [ROOT / "pyproject.toml", ROOT / "README.md"]
    files += sorted(p for p in (ROOT / "tms_stack").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc"))
    return files


def project_key() -> str:
    files = _project_files()
    return _h(LAYER_FORMAT, PY, *(str(p.relative_to(ROOT)) for p in files), *(p.read_bytes() for p in files))


def _make_project(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tms-img-") as t:
        src, wheels, target = Path(t) / "src", Path(t) / "wheels", Path(t) / "site"
        for p in _project_files():  # a clean copy: the build writes build/ and *.egg-info beside it
            (src / p.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / p.relative_to(ROOT))
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
              "--wheel-dir", str(wheels), str(src)], "pip wheel the project")
        _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
              "--no-compile", "--target", str(target), *map(str, wheels.glob("*.whl"))], "pip install the wheel")
        shutil.rmtree(target / "bin", ignore_errors=True)
        launcher = Path(t) / "tms"
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        dest.write_bytes(oci.layer_from({"/usr/local/bin/tms": launcher}, {SITE: target}))


def _image(root: Path, name: str, layers: list[tuple[str, Path]], **config) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    key = _h(*(p.name for _n, p in layers), repr(sorted(config.items())))
    ref = f"tms.local/{name}:{key}"
    out = root / "images" / f"{name}-{key}.tar"
    if not out.exists():
        start = time.monotonic()
        for stale in out.parent.glob(f"{name}-*.tar"):
            # older images go, but not one another test session may be importing right now
            if time.time() - stale.stat().st_mtime > 7200:
                stale.unlink()
        oci.write_image_files(out, ref, [p for _n, p in layers], **config)
        build_tools.log(f"image {ref}: {out.stat().st_size >> 20} MiB in {build_tools._fmt_s(time.monotonic() - start)}")
    return ref, out


def build_images(root: Path | None = None) -> dict[str, tuple[str, Path]]:
    """``{"triton": (ref, tar), "agent": (ref, tar)}``, built or taken from the cache."""
    root = root or build_tools.cache_root()
    with build_tools._Lock(root / "locks" / "images.lock"):
        base = _layer(root, "base", base_key(), _make_base)
        triton = _layer(root, "triton", triton_key(), _make_triton)
        deps = _layer(root, "agent-deps", deps_key(), _make_deps)
        project = _layer(root, "agent-project", project_key(), _make_project)
        return {
            "triton": _image(root, "tritonserver", [("base", base), ("triton", triton)],
                             entrypoint=["tritonserver"], env=TRITON_ENV),
            "agent": _image(root, "agent", [("base", base), ("deps", deps), ("project", project)],
                            entrypoint=["tms"], cmd=["agent"], user=str(TMS_UID)),
        }


def main() -> int:
    start = time.monotonic()
    try:
        out = build_images()
    except build_tools.BuildError as e:
        build_tools.log(f"FAILED images: {e}")
        return 1
    build_tools.log(f"images: {build_tools._fmt_s(time.monotonic() - start)}")
    for ref, tar in out.values():
        print(f"{ref} {tar}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    raise SystemExit(main())
