#!/usr/bin/env bash
# Builds helm from the Go module proxy into a cache outside the checkout and prints the
# binary's path. Rebuilds only when HELM_VERSION in hack/versions.env changes; the first
# build takes a few minutes, later calls are instant. HELM=/path/to/helm skips the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
. "$here/versions.env"
: "${HELM_VERSION:?HELM_VERSION is not set in hack/versions.env}"

if [ -n "${HELM:-}" ]; then
  if [ -x "$HELM" ]; then echo "$HELM"; exit 0; fi
  echo "HELM=$HELM is not an executable file" >&2
  exit 1
fi

cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
bin="$cache/helm-$HELM_VERSION"
if [ -x "$bin/helm" ]; then
  echo "$bin/helm"; exit 0
fi
command -v go >/dev/null 2>&1 || { echo "error: go is needed to build helm (see README.md, Prerequisites)" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
# What helm's own Makefile sets: the version `helm version` prints, and the Kubernetes
# version `helm template`/`helm lint` assume (.Capabilities.KubeVersion, deprecation checks),
# derived from the k8s.io/client-go that helm release requires (v0.X.Y -> 1.X).
mod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$mod" ] || { echo "error: could not download helm.sh/helm/v3@$HELM_VERSION from the Go module proxy" >&2; exit 1; }
k8s_minor=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$mod" | head -n 1)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
if [ -n "$k8s_minor" ]; then
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
  done
fi

echo "building helm $HELM_VERSION (first time only, a few minutes)" >&2
mkdir -p "$bin.tmp"
GOBIN="$bin.tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
# appear complete or not at all, so an interrupted build is never taken for a cached one
rm -rf "$bin"
mv "$bin.tmp" "$bin"
echo "$bin/helm"
