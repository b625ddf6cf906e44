#!/usr/bin/env bash
# Provide etcd and kube-apiserver for the tests and the sandbox, the envtest way.
#
# Lookup order (first hit wins, per binary):
#   TEST_ASSET_ETCD / TEST_ASSET_KUBE_APISERVER (full paths), then $KUBEBUILDER_ASSETS/<name>,
#   then .kubebins/bin/<name> inside this checkout (git-ignored), then the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/ccm-lb/control-plane/bin (shared by every clone on the machine).
# When a binary is not found it is built from the Go module proxy into .kubebins/ and copied to the
# per-user cache (a cold build takes tens of minutes on 2 cores; later runs, and fresh clones on the
# same machine, do nothing). Go's own module and build caches are the usual ones. Prints the bin
# directory on the last line.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/k8s-build.sh
. "$ROOT/hack/lib/k8s-build.sh"
K8S_VERSIONS=${CCM_K8S_VERSIONS:-"v1.37.2 v1.36.3"}
ETCD_VERSIONS=${CCM_ETCD_VERSIONS:-"v3.6.16 v3.6.15 v3.6.14 v3.6.13"}
BASE=${CCM_KUBEBINS:-$ROOT/.kubebins}
OUT=$BASE/bin
LOG=$BASE/build.log
USER_CACHE=${CCM_USER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ccm-lb/control-plane/bin}

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] error: %s\n' "$*" >&2; exit 1; }

found() {  # name env-var -> prints a path or nothing
  local name=$1 var=$2
  if [ -n "${!var:-}" ]; then
    [ -x "${!var}" ] || die "$var=${!var} is not an executable file; unset it or point it at $name"
    printf '%s\n' "${!var}"; return
  fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    printf '%s\n' "$KUBEBUILDER_ASSETS/$name"; return
  fi
  if [ -x "$OUT/$name" ]; then printf '%s\n' "$OUT/$name"; return; fi
  if [ -x "$USER_CACHE/$name" ]; then printf '%s\n' "$USER_CACHE/$name"; fi
}

command -v go >/dev/null 2>&1 || NEED_GO=1

export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"

build_apiserver() {
  local k8s src
  for k8s in $K8S_VERSIONS; do
    src=$BASE/src-kube-$k8s
    log "building kube-apiserver $k8s (staging v0.${k8s#v1.}) in $src; log: $LOG"
    mkdir -p "$src"
    (
      cd "$src"
      [ -f go.mod ] || go mod init example.invalid/kubebins >>"$LOG" 2>&1
      k8s_staging_replaces "$k8s"
      go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$k8s" >>"$LOG" 2>&1
      go build -p "${CCM_BUILD_PARALLEL:-2}" -trimpath -ldflags "$(k8s_version_ldflags "$k8s")" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >>"$LOG" 2>&1
      mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
    ) && { echo "$k8s" >"$OUT/kube-apiserver.version"; return 0; }
    log "kube-apiserver $k8s did not build (see $LOG); trying the next version"
  done
  return 1
}

build_etcd() {
  local v src
  for v in $ETCD_VERSIONS; do
    src=$BASE/src-etcd-$v
    log "building etcd $v in $src; log: $LOG"
    mkdir -p "$src"
    (
      cd "$src"
      [ -f go.mod ] || go mod init example.invalid/etcdbin >>"$LOG" 2>&1
      go get -tool "go.etcd.io/etcd/server/v3@$v" >>"$LOG" 2>&1
      go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >>"$LOG" 2>&1
      mv "$OUT/etcd.tmp" "$OUT/etcd"
    ) && { echo "$v" >"$OUT/etcd.version"; return 0; }
    log "etcd $v did not build (see $LOG); trying the next version"
  done
  return 1
}

ETCD=$(found etcd TEST_ASSET_ETCD)
APISERVER=$(found kube-apiserver TEST_ASSET_KUBE_APISERVER)
if [ -z "$ETCD" ] || [ -z "$APISERVER" ]; then
  [ -z "${NEED_GO:-}" ] || die "go is not installed and no etcd/kube-apiserver was found; install Go 1.24+ or set KUBEBUILDER_ASSETS to a folder holding both"
  start=$(date +%s)
  if [ -z "$ETCD" ]; then build_etcd || die "could not build etcd from the Go module proxy; see $LOG (or set TEST_ASSET_ETCD)"; ETCD=$OUT/etcd; fi
  if [ -z "$APISERVER" ]; then build_apiserver || die "could not build kube-apiserver from the Go module proxy; see $LOG (or set TEST_ASSET_KUBE_APISERVER)"; APISERVER=$OUT/kube-apiserver; fi
  log "built in $(( $(date +%s) - start ))s"
  # Share with other clones on this machine (CI clones the repository afresh).
  if mkdir -p "$USER_CACHE" 2>/dev/null; then
    for f in etcd etcd.version kube-apiserver kube-apiserver.version; do
      [ -f "$OUT/$f" ] && cp -f "$OUT/$f" "$USER_CACHE/$f.tmp" && mv -f "$USER_CACHE/$f.tmp" "$USER_CACHE/$f"
    done
  fi
fi
log "etcd: $ETCD ($("$ETCD" --version 2>/dev/null | head -1))"
log "kube-apiserver: $APISERVER ($("$APISERVER" --version 2>/dev/null))"
if [ "$(dirname "$ETCD")" = "$(dirname "$APISERVER")" ]; then
  dirname "$APISERVER"
else
  # Different places: make one folder of links so callers need a single KUBEBUILDER_ASSETS.
  mkdir -p "$BASE/links"; ln -sf "$ETCD" "$BASE/links/etcd"; ln -sf "$APISERVER" "$BASE/links/kube-apiserver"
  echo "$BASE/links"
fi
