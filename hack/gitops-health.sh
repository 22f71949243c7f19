#!/usr/bin/env bash
# Builds gitops-health (tests/gitops: what Flux's kstatus and an Argo CD Lua health check
# say about live objects) from the Go module proxy into the cache outside the checkout and
# prints the binary's path. Rebuilt only when tests/gitops/{go.mod,go.sum,main.go} change;
# the first build takes about a minute, later calls are instant.
# GITOPS_HEALTH=/path/to/gitops-health skips the build.
# Usage: "$(hack/gitops-health.sh)" --lua health.lua < objects.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../tests/gitops"

if [ -n "${GITOPS_HEALTH:-}" ]; then
  if [ -x "$GITOPS_HEALTH" ]; then echo "$GITOPS_HEALTH"; exit 0; fi
  echo "GITOPS_HEALTH=$GITOPS_HEALTH is not an executable file" >&2
  exit 1
fi

cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
hash=$(cd "$src" && cat go.mod go.sum main.go | sha256sum | cut -c1-16)
bin="$cache/gitops-health-$hash"
if [ -x "$bin/gitops-health" ]; then
  echo "$bin/gitops-health"; exit 0
fi
command -v go >/dev/null 2>&1 || { echo "error: go is needed to build gitops-health (see README.md, Prerequisites)" >&2; exit 1; }

# Concurrent first calls (parallel tests) wait for one build instead of racing it.
mkdir -p "$cache"
exec 9>"$bin.lock"
flock 9
if [ -x "$bin/gitops-health" ]; then
  echo "$bin/gitops-health"; exit 0
fi

# -mod=readonly, not -mod=mod as for the scratch modules of the other tools: go.mod and
# go.sum are committed here, and a build must fail rather than rewrite them.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
echo "building gitops-health (first time only, about a minute)" >&2
rm -rf "$bin.tmp"
mkdir -p "$bin.tmp"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp/gitops-health" .) >&2
# appear complete or not at all, so an interrupted build is never taken for a cached one
rm -rf "$bin"
mv "$bin.tmp" "$bin"
echo "$bin/gitops-health"
