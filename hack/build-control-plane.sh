#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy into a cache outside
# the checkout. `go install` refuses modules with replace directives, so each is built
# from a scratch module that repeats the upstream replaces at the matching versions.
# Prints the bin directory. Rebuilds only when a pinned version changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
bin="$cache/control-plane/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"; exit 0
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
work="$cache/control-plane/src"
mkdir -p "$bin"

k8s_minor=${KUBERNETES_VERSION#v1.}          # 36.3
staging_version="v0.$k8s_minor"             # v0.36.3
k8s_src="$work/kubernetes-$KUBERNETES_VERSION"
if [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/kubectl" ]; then
  echo "building kube-apiserver and kubectl $KUBERNETES_VERSION (first time only, ~10-20 min)" >&2
  mkdir -p "$k8s_src"
  cd "$k8s_src"
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module local/control-plane"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    # every staging module that upstream replaces with ./staging/src/... becomes v0.X.Y
    sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*|replace \1 => \1 '"$staging_version"'|p' "$upstream_mod"
  } > go.mod
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBERNETES_VERSION" >&2
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION" \
    -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl >&2
fi

etcd_src="$work/etcd-$ETCD_VERSION"
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd $ETCD_VERSION (first time only)" >&2
  mkdir -p "$etcd_src"
  cd "$etcd_src"
  {
    echo "module local/etcd"
    echo "go 1.26"
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
    done
  } > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2
fi
echo "$bin"
