#!/usr/bin/env bash
# `make test`: installs what is missing, starts the local environment (reusing one that
# runs already), then runs the format, lint and CRD checks and every test. What this run
# started is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/prereqs.sh

step() { printf '\n== %s\n' "$*" >&2; }

step "local environment (kube-apiserver + etcd, AWS emulator)"
env_file=$(hack/local-env.sh up --owner-pid $$)
# shellcheck disable=SC1090
. "$env_file"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "CRD check: crds/ matches backup-warden crd"
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
cargo run --quiet --locked -- crd --output-dir "$generated"
if ! diff -ru crds "$generated" >&2; then
  echo "crds/ is out of date with src/api: run 'make crds' and commit the result" >&2
  exit 1
fi

step "Helm chart: CRD copies, lint, template, server-side dry run"
hack/check-chart.sh

step "alert rules: promtool check rules and test rules"
hack/check-alerts.sh

step "GitOps health tool (kstatus + Argo CD's Lua runtime): go vet, go test"
(cd tests/gitops && GOFLAGS="-mod=readonly -buildvcs=false" go vet ./... && GOFLAGS="-mod=readonly -buildvcs=false" go test ./...) >&2

step "AWS emulator smoke test"
"$(hack/moto-venv.sh)" tests/emulator/smoke_test.py > "$generated/smoke.log" 2>&1 || { cat "$generated/smoke.log" >&2; exit 1; }
tail -n 1 "$generated/smoke.log" >&2

step "headless Chromium (the auditor's report is rendered in it)"
CHROMIUM=$(hack/chromium.sh)
export CHROMIUM

step "cargo test"
cargo test --all-features --locked
