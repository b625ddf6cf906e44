#!/usr/bin/env python3
"""Pack the OCI image layout buildah committed into the one archive every loader accepts (hack/build-image).

An OCI layout in a tar (``oci-layout``, ``index.json``, ``blobs/``) is what ``podman load``, ``skopeo copy
oci-archive:`` and, unpacked, ``crane push`` read; Docker's classic image store reads only ``docker save``'s
``manifest.json``. ``docker save`` has written both side by side since Docker 25, pointing at the same
blobs, and so does this: the layers are stored once. The index also names the image for containerd's
loaders (``io.containerd.image.name``, as ``ctr import`` and Docker's containerd store read it).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def pack(*, layout: Path, name: str, out: Path) -> dict[str, Any]:
    """Write ``out`` from ``layout`` (one image) named ``name`` (``repository:tag``); returns its manifest."""
    index = json.loads((layout / "index.json").read_text())
    if len(index["manifests"]) != 1:
        raise SystemExit(f"archive: expected one image in {layout}, found {len(index['manifests'])}")
    descriptor = index["manifests"][0]
    annotations = descriptor.setdefault("annotations", {})
    annotations["io.containerd.image.name"] = name
    annotations.setdefault("org.opencontainers.image.ref.name", name.rpartition(":")[2])
    manifest: dict[str, Any] = json.loads(_blob(layout, descriptor["digest"]).read_text())
    docker = [
        {
            "Config": str(_blob(Path(), manifest["config"]["digest"])),
            "RepoTags": [name],
            "Layers": [str(_blob(Path(), layer["digest"])) for layer in manifest["layers"]],
        }
    ]
    blobs = sorted(p for p in (layout / "blobs").rglob("*") if p.is_file())
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _member(tar, "oci-layout", (layout / "oci-layout").read_bytes())
        _member(tar, "index.json", json.dumps(index).encode())
        _member(tar, "manifest.json", json.dumps(docker).encode())
        for directory in ("blobs", *sorted({str(p.parent.relative_to(layout)) for p in blobs})):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path in blobs:
            info = tarfile.TarInfo(str(path.relative_to(layout)))
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as data:
                tar.addfile(info, data)
    return manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--layout", type=Path, required=True, help="the OCI image layout directory")
    parser.add_argument("--name", required=True, help="repository:tag the loaders give the image")
    parser.add_argument("--out", type=Path, required=True, help="the archive to write")
    args = parser.parse_args(argv)
    pack(layout=args.layout, name=args.name, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
