"""Finding etcd and kube-apiserver the envtest way; building them is ``hack/ensure-control-plane.sh``'s job.

Order, per binary: ``TEST_ASSET_ETCD`` / ``TEST_ASSET_KUBE_APISERVER`` (full paths), then
``$KUBEBUILDER_ASSETS/<name>``, then ``.kubebins/bin`` in the checkout, then the per-user cache that
``hack/ensure-control-plane.sh`` fills, then the newest setup-envtest store, then
``/usr/local/kubebuilder/bin``. Whoever builds missing binaries (``ccm sandbox``) runs that script
(:data:`BUILD_SCRIPT`), so there is one recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "ensure-control-plane.sh"
HOW_TO_GET = (
    "run hack/ensure-control-plane.sh (builds etcd and kube-apiserver from the Go module proxy into "
    ".kubebins/, needs Go), or set KUBEBUILDER_ASSETS to a folder holding both, or set "
    "TEST_ASSET_ETCD and TEST_ASSET_KUBE_APISERVER to their paths"
)


class AssetsNotFound(RuntimeError):
    """A control-plane binary is missing; the message says how to get it."""


@dataclass(frozen=True)
class Assets:
    """Paths of the two binaries a local control plane needs."""

    etcd: Path
    kube_apiserver: Path


_ENV = {"etcd": "TEST_ASSET_ETCD", "kube-apiserver": "TEST_ASSET_KUBE_APISERVER"}


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("CCM_USER_CACHE", Path(base) / "ccm-lb" / "control-plane" / "bin"))


def _setup_envtest_dirs() -> list[Path]:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    store = Path(base) / "kubebuilder-envtest" / "k8s"
    if not store.is_dir():
        return []
    return sorted((p for p in store.iterdir() if p.is_dir()), reverse=True)


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    explicit = os.environ.get(_ENV[name])
    if explicit:
        return [Path(explicit)]
    if os.environ.get("KUBEBUILDER_ASSETS"):
        found.append(Path(os.environ["KUBEBUILDER_ASSETS"]) / name)
    found.append(REPO_ROOT / ".kubebins" / "bin" / name)
    found.append(_user_cache() / name)
    found.extend(d / name for d in _setup_envtest_dirs())
    found.append(Path("/usr/local/kubebuilder/bin") / name)
    return found


def _find(name: str) -> Path:
    candidates = _candidates(name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    if os.environ.get(_ENV[name]):
        raise AssetsNotFound(f"{_ENV[name]}={candidates[0]} is not an executable file; {HOW_TO_GET}")
    raise AssetsNotFound(
        f"{name} not found (looked in {', '.join(str(p.parent) for p in candidates)}); {HOW_TO_GET}"
    )


def find_assets() -> Assets:
    """Locate both binaries without building anything; raise :class:`AssetsNotFound` with the fix."""
    return Assets(etcd=_find("etcd"), kube_apiserver=_find("kube-apiserver"))
