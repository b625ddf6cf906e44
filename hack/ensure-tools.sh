#!/usr/bin/env bash
# Provide the command-line tools the deploy/ and terraform/ tests drive: helm, kubectl, tofu (for
# `tofu fmt`) and checkov. Like the control plane, they come from the package registries only: the Go
# tools are built from the Go module proxy, checkov is pip-installed into its own virtualenv (its pinned
# dependencies would fight the project's).
#
# Lookup per tool: .tools/bin/<name> in this checkout (git-ignored) when its .version file matches, then
# the per-user cache ${XDG_CACHE_HOME:-~/.cache}/ccm-lb/tools/bin (shared by every clone on the machine,
# so CI's fresh clones do not rebuild). Otherwise it is built and copied to the cache. Prints the bin
# directory on the last line. CCM_TOOLS_BIN set to an existing folder skips all of this.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/lib/k8s-build.sh
. "$ROOT/hack/lib/k8s-build.sh"
BASE=${CCM_TOOLS:-$ROOT/.tools}
OUT=$BASE/bin
LOG=$BASE/build.log
USER_CACHE=${CCM_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ccm-lb/tools}

HELM_VERSION=v3.22.0
KUBECTL_VERSION=v1.37.2
TOFU_VERSION=v1.10.10
CHECKOV_VERSION=3.3.30

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }

if [ -n "${CCM_TOOLS_BIN:-}" ] && [ -d "$CCM_TOOLS_BIN" ]; then echo "$CCM_TOOLS_BIN"; exit 0; fi

export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"

have() {  # name version -> 0 when .tools/bin has it, or after copying it from the user cache
  local name=$1 want=$2
  if [ -x "$OUT/$name" ] && [ "$(cat "$OUT/$name.version" 2>/dev/null)" = "$want" ]; then return 0; fi
  if [ -x "$USER_CACHE/bin/$name" ] && [ "$(cat "$USER_CACHE/bin/$name.version" 2>/dev/null)" = "$want" ]; then
    ln -sf "$USER_CACHE/bin/$name" "$OUT/$name"; echo "$want" >"$OUT/$name.version"; return 0
  fi
  return 1
}

share() {  # name version: copy a freshly built binary to the per-user cache
  local name=$1 want=$2
  mkdir -p "$USER_CACHE/bin" 2>/dev/null || return 0
  cp -f "$OUT/$name" "$USER_CACHE/bin/$name.tmp" && mv -f "$USER_CACHE/bin/$name.tmp" "$USER_CACHE/bin/$name"
  echo "$want" >"$USER_CACHE/bin/$name.version"
}

replaces_of() {  # go.mod path -> "old=new@version" for each replace directive (a main module's replaces
  # are ignored when it is built as a dependency, so they are re-applied to the build module)
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.findall(r"^replace\s*\((.*?)^\)", text, flags=re.S | re.M)
lines = [l for b in block for l in b.splitlines()] + re.findall(r"^replace\s+([^(].*)$", text, flags=re.M)
for line in lines:
    line = line.split("//")[0].strip()
    if "=>" not in line:
        continue
    left, right = (part.split() for part in line.split("=>"))
    if len(right) == 2:
        print(f"{'@'.join(left)}={right[0]}@{right[1]}")
PY
}

go_build() {  # name version[+build-tag] src-dir package ldflags [replace-from-k8s-version]
  local name=$1 stamp=$2 version=${2%%+*} src=$3 pkg=$4 ldf=$5 k8s=${6:-}
  command -v go >/dev/null 2>&1 || die "go is not installed; it is needed to build $name $version (or set CCM_TOOLS_BIN)"
  log "building $name $version in $src; log: $LOG"
  mkdir -p "$src"
  (
    cd "$src"
    [ -f go.mod ] || go mod init "example.invalid/$name" >>"$LOG" 2>&1
    if [ -n "$k8s" ]; then
      k8s_staging_replaces "$k8s"
    fi
    if [ -z "$k8s" ]; then
      local main mod r
      main=$(go list -m -json "${pkg%%/cmd/*}@$version" 2>>"$LOG" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Path"])')
      mod=$(go mod download -json "$main@$version" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
      for r in $(replaces_of "$mod"); do go mod edit -replace="$r"; done
    fi
    go get -tool "$pkg@$version" >>"$LOG" 2>&1
    if [[ $ldf == *@CLIENT_GO_MINOR@* ]]; then  # helm's Makefile: the Kubernetes version it assumes
      local cg
      cg=$(go list -m -f '{{.Version}}' k8s.io/client-go)
      cg=${cg#v0.}; ldf=${ldf//@CLIENT_GO_MINOR@/${cg%%.*}}
    fi
    go build -p "${CCM_BUILD_PARALLEL:-2}" -trimpath -ldflags "$ldf" -o "$OUT/$name.tmp" "$pkg" >>"$LOG" 2>&1
    rm -f "$OUT/$name"  # may be a link into the user cache
    mv "$OUT/$name.tmp" "$OUT/$name"
  ) || die "could not build $name $version from the Go module proxy; see $LOG"
  echo "$stamp" >"$OUT/$name.version"
  share "$name" "$stamp"
}

start=$(date +%s)
built=""

# +k8s: built with the Kubernetes version helm assumes for `helm template` set like helm's Makefile does
# (without it helm assumes v1.20 and a chart's kubeVersion constraint fails).
HELM_STAMP=$HELM_VERSION+k8s
if ! have helm "$HELM_STAMP"; then
  ldf="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldf="$ldf -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=@CLIENT_GO_MINOR@"
  done
  go_build helm "$HELM_STAMP" "$BASE/src-helm" helm.sh/helm/v3/cmd/helm "$ldf"
  built="$built helm"
fi

if ! have kubectl "$KUBECTL_VERSION"; then
  go_build kubectl "$KUBECTL_VERSION" "$BASE/src-kubectl" k8s.io/kubernetes/cmd/kubectl \
    "$(k8s_version_ldflags "$KUBECTL_VERSION")" "$KUBECTL_VERSION"
  built="$built kubectl"
fi

if ! have tofu "$TOFU_VERSION"; then
  go_build tofu "$TOFU_VERSION" "$BASE/src-tofu" github.com/opentofu/opentofu/cmd/tofu \
    "-s -w -X github.com/opentofu/opentofu/version.dev=no"
  built="$built tofu"
fi

if ! have checkov "$CHECKOV_VERSION"; then
  # A virtualenv is not relocatable, so checkov lives in the per-user cache and is linked from here.
  venv=$USER_CACHE/checkov-$CHECKOV_VERSION
  if [ ! -x "$venv/bin/checkov" ]; then
    log "installing checkov $CHECKOV_VERSION into $venv; log: $LOG"
    rm -rf "$venv"
    python3 -m venv "$venv" >>"$LOG" 2>&1 || die "could not create a virtualenv for checkov at $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" >>"$LOG" 2>&1 \
      || die "could not pip-install checkov $CHECKOV_VERSION; see $LOG"
  fi
  mkdir -p "$USER_CACHE/bin"
  ln -sf "$venv/bin/checkov" "$USER_CACHE/bin/checkov"
  echo "$CHECKOV_VERSION" >"$USER_CACHE/bin/checkov.version"
  have checkov "$CHECKOV_VERSION" || die "checkov $CHECKOV_VERSION is not usable from $USER_CACHE/bin"
  built="$built checkov"
fi

[ -z "$built" ] || log "provided$built in $(( $(date +%s) - start ))s"
echo "$OUT"
