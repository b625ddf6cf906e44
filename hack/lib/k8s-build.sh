# Sourced by hack/ensure-control-plane.sh and hack/ensure-tools.sh: building binaries of
# k8s.io/kubernetes (kube-apiserver, kubectl) from the Go module proxy.

# k8s.io/kubernetes pins its staging modules at v0.0.0 through replace directives, which Go ignores in a
# dependency: map each to its real tag (v1.X.Y -> v0.X.Y) in the go.mod of the current directory.
k8s_staging_replaces() {  # k8s-version
  local k8s=$1 stg mod m
  stg="v0.${k8s#v1.}"
  mod=$(go mod download -json "k8s.io/kubernetes@$k8s" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$mod" | sort -u); do
    go mod edit -replace="$m=$m@$stg"
  done
}

# The -ldflags that make `--version` print the real version (the Makefile sets these from git).
k8s_version_ldflags() {  # k8s-version
  local k8s=$1 minor ldf p
  minor=$(echo "$k8s" | cut -d. -f2)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  printf '%s\n' "$ldf"
}
