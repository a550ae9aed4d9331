"""A small OCI image writer: one layer from a directory or a file map, an image config, an
OCI-layout tar that ``ctr -n k8s.io images import`` reads. No registry, no daemon.

Deterministic: files sorted, mtimes 0, owner root, so the same inputs give the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path


def _add_tree(tar: tarfile.TarFile, src: Path, arc: str) -> None:
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        base = arc if rel == "." else f"{arc}/{rel}".lstrip("/")
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            info = tar.gettarinfo(full, arcname=f"{base}/{name}".lstrip("/"))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isreg():
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def layer_from(files: dict[str, Path], trees: dict[str, Path] | None = None) -> bytes:
    """An uncompressed layer tar: ``files`` maps a path in the image to a file here."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arc in sorted(files):
            src = files[arc]
            info = tar.gettarinfo(str(src), arcname=arc.lstrip("/"))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(src, "rb") as fh:
                tar.addfile(info, fh)
        for arc, src in sorted((trees or {}).items()):
            _add_tree(tar, src, arc.strip("/"))
    return buf.getvalue()


def _blob(out: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def _file_blob(out: tarfile.TarFile, path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    size = path.stat().st_size
    info = tarfile.TarInfo(f"blobs/sha256/{h.hexdigest()}")
    info.size = size
    with open(path, "rb") as fh:
        out.addfile(info, fh)
    return f"sha256:{h.hexdigest()}", size


def _config(entrypoint: list[str], env: list[str] | None, workdir: str, cmd: list[str] | None,
            user: str | None, diff_ids: list[str]) -> bytes:
    cfg: dict = {"Entrypoint": entrypoint,
                 "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                 "WorkingDir": workdir}
    if cmd:
        cfg["Cmd"] = cmd
    if user:
        cfg["User"] = user
    return json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                       "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()


def write_image_files(dest: Path, name: str, layers: list[Path], *, entrypoint: list[str],
                      env: list[str] | None = None, workdir: str = "/", cmd: list[str] | None = None,
                      user: str | None = None) -> str:
    """Like write_image, from layer tars on disk, stored uncompressed (large layers: no gzip
    pass on every build, and containerd unpacks them without decompressing)."""
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as out:
        layer_descs = []
        for path in layers:
            digest, size = _file_blob(out, path)
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": digest, "size": size})
        # an uncompressed layer's diff id is its digest
        cfg = _config(entrypoint, env, workdir, cmd, user, [d["digest"] for d in layer_descs])
        _finish(out, name, cfg, layer_descs)
    tmp.rename(dest)
    return name


def write_image(dest: Path, name: str, layers: list[bytes], *, entrypoint: list[str],
                env: list[str] | None = None, workdir: str = "/") -> str:
    """Write an OCI-layout tar for image ``name``; return the manifest digest."""
    diff_ids = [f"sha256:{hashlib.sha256(raw).hexdigest()}" for raw in layers]
    gz = [gzip.compress(raw, compresslevel=1, mtime=0) for raw in layers]
    tmp = dest.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as out:
        layer_descs = []
        for data in gz:
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "digest": _blob(out, data), "size": len(data)})
        man_d = _finish(out, name, _config(entrypoint, env, workdir, None, None, diff_ids), layer_descs)
    tmp.rename(dest)
    return man_d


def _finish(out: tarfile.TarFile, name: str, cfg: bytes, layer_descs: list[dict]) -> str:
    """The config, manifest and index blobs of an OCI layout; return the manifest digest."""
    cfg_d = _blob(out, cfg)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d, "size": len(cfg)},
        "layers": layer_descs,
    }, sort_keys=True).encode()
    man_d = _blob(out, manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d,
                       "size": len(manifest),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name}}],
    }).encode()
    for fname, data in (("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')):
        info = tarfile.TarInfo(fname)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    return man_d
