#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow linter) from the Go module proxy into the
# cache outside the checkout and prints its path. Rebuilt only when the pinned version changes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
bin="$cache/actionlint-$ACTIONLINT_VERSION"
if [ ! -x "$bin/actionlint" ]; then
  echo "building actionlint $ACTIONLINT_VERSION (first time only)" >&2
  mkdir -p "$bin"
  GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >&2
fi
echo "$bin/actionlint"
