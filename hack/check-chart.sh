#!/usr/bin/env bash
# Checks the Helm chart charts/backup-warden:
#   1. its crds/ are the same files as the repository's crds/
#   2. `helm lint --strict` and `helm template` with the default values and with every
#      ci/*-values.yaml (values.schema.json is applied by both)
#   3. values the chart must refuse are refused (schema and template checks)
#   4. no render contains a Secret (Secrets are mounted, never rendered)
#   5. every rendered object, CRDs included, is accepted by the real kube-apiserver of the
#      local environment (hack/local-env.sh) with `kubectl apply --dry-run=server`, in
#      namespaces that enforce the restricted Pod Security Standard; any warning fails
# Builds helm (hack/helm.sh) and starts the local environment when they are missing; stops
# what it started when it ends.
#
#   hack/check-chart.sh               run the checks
#   hack/check-chart.sh --sync-crds   copy crds/ into the chart (what the check asks for)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
chart=charts/backup-warden
release=backup-warden
namespace=backup-warden-chart-check

sync_cmd="hack/check-chart.sh --sync-crds"
if [ "${1:-}" = "--sync-crds" ]; then
  rm -f "$chart"/crds/*.yaml
  mkdir -p "$chart/crds"
  cp crds/*.yaml "$chart/crds/"
  echo "copied crds/*.yaml to $chart/crds/"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--sync-crds]" >&2
  exit 2
fi

step() { printf -- '-- %s\n' "$*" >&2; }
fail() { echo "chart check FAILED: $*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "CRDs: $chart/crds/ is a copy of crds/"
if ! diff -ru crds "$chart/crds" >"$work/crds.diff" 2>&1; then
  cat "$work/crds.diff" >&2
  fail "$chart/crds/ differs from crds/; run '$sync_cmd' and commit the result"
fi

helm=$("$root/hack/helm.sh")
# shellcheck source=SCRIPTDIR/versions.env
. "$root/hack/versions.env"
# render for the Kubernetes version the local API server runs
kube_version=$KUBERNETES_VERSION
step "helm: $("$helm" version --short) ($helm)"

# The value sets: the defaults, and each ci/*-values.yaml.
cases=(default)
for f in "$chart"/ci/*-values.yaml; do cases+=("$f"); done

for c in "${cases[@]}"; do
  # the defaults grant no tenancy (refused below): say single team
  args=(--set tenancy.singleTeam=true)
  name=default
  if [ "$c" != default ]; then args=(-f "$c"); name=$(basename "$c" .yaml); fi
  step "helm lint --strict ($name)"
  "$helm" lint --strict "$chart" --namespace "$namespace" --kube-version "$kube_version" "${args[@]}" >"$work/lint.log" 2>&1 ||
    { cat "$work/lint.log" >&2; fail "helm lint ($name)"; }
  step "helm template ($name)"
  "$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" \
    --include-crds "${args[@]}" >"$work/$name.yaml" 2>"$work/template.log" ||
    { cat "$work/template.log" >&2; fail "helm template ($name)"; }
  if grep -qE '^kind: *Secret *$' "$work/$name.yaml"; then
    fail "the $name render contains a Secret; the chart must only mount Secrets created outside it"
  fi
  # the restricted Pod Security Standard (checked by the API server below) does not cover it
  if ! grep -qE '^ +readOnlyRootFilesystem: true$' "$work/$name.yaml"; then
    fail "the $name render's container has no read-only root filesystem"
  fi
done

step "values the chart refuses"
refused=0
refuse() { # description, then helm template arguments (on top of a single-team tenancy)
  local what=$1; shift
  if "$helm" template "$release" "$chart" --namespace "$namespace" --set tenancy.singleTeam=true "$@" >/dev/null 2>"$work/refused.log"; then
    echo "  accepted, but should be refused: $what" >&2
    refused=1
  fi
}
refuse "no tenancy: the chart grants nothing silently" --set tenancy.singleTeam=false
refuse "single team and per-namespace allowances at once" --set tenancy.singleTeam=true \
  --set 'tenancy.namespaces.a.aws={self}'
refuse "a tenancy role that is not an IAM role ARN" --set tenancy.singleTeam=false \
  --set 'tenancy.namespaces.a.aws={arn:aws:s3:::bucket}'
refuse "a negative resync interval" --set settings.resyncInterval=-5m
refuse "a retention floor above RDS' 35 days" --set settings.policyMinRetentionDays=36
refuse "an unknown top-level value (a typo)" --set replicas=3
refuse "an unknown pull policy" --set image.pullPolicy=Sometimes
refuse "a log format the binary does not know" --set settings.logFormat=xml
refuse "a role ARN that is not one" --set serviceAccount.awsRoleArn=backup-warden
refuse "two replicas without leader election" --set leaderElection.enabled=false
refuse "both a GitHub token and a GitHub App" --set github.tokenSecret.name=t \
  --set github.app.id=1 --set github.app.installationId=2 --set github.app.privateKeySecret.name=k
refuse "an incomplete GitHub App" --set github.app.id=1
[ "$refused" -eq 0 ] || fail "values.schema.json or the template checks accept invalid values"

step "local environment (kube-apiserver + etcd)"
env_file=$("$root/hack/local-env.sh" up --owner-pid $$)
# shellcheck disable=SC1090
. "$env_file"
kubectl=${BACKUP_WARDEN_KUBECTL:?the local environment did not name kubectl}

step "test-only monitoring.coreos.com CRDs ($chart/ci/monitoring-crds.yaml)"
# Stand-ins only where the real Prometheus Operator CRDs are not installed.
for crd in servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com; do
  if ! "$kubectl" get crd "$crd" >/dev/null 2>&1; then
    "$kubectl" apply -f "$chart/ci/monitoring-crds.yaml" >&2 || fail "could not install $chart/ci/monitoring-crds.yaml"
    break
  fi
done
"$kubectl" wait --for condition=established --timeout=60s \
  crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null ||
  fail "the monitoring.coreos.com CRDs did not become established"

step "backup-warden's CRDs (server-side apply), so that the dry runs can check objects of its kinds"
"$kubectl" apply --server-side --force-conflicts -f crds/ >/dev/null || fail "could not install crds/"
"$kubectl" wait --for condition=established --timeout=60s \
  crd/backedupdatabases.backupwarden.io crd/backeduprepositories.backupwarden.io >/dev/null ||
  fail "backup-warden's CRDs did not become established"

# Every namespace the renders use, enforcing the restricted Pod Security Standard, so that a
# pod template that is not restricted (root, capabilities, no seccomp, ...) draws a warning.
namespaces=$(cat "$work"/*.yaml | sed -n 's/^  namespace: *\([a-z0-9-]*\) *$/\1/p' | sort -u)
for ns in $namespace $namespaces; do
  cat <<NS
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    app.kubernetes.io/part-of: backup-warden-chart-check
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
---
NS
done | "$kubectl" apply -f - >/dev/null || fail "could not create the check's namespaces"

for c in "${cases[@]}"; do
  # the defaults grant no tenancy (refused below): say single team
  args=(--set tenancy.singleTeam=true)
  name=default
  if [ "$c" != default ]; then args=(-f "$c"); name=$(basename "$c" .yaml); fi
  step "kubectl apply --dry-run=server ($name)"
  if ! "$kubectl" apply --dry-run=server --validate=strict -f - <"$work/$name.yaml" >"$work/apply.log" 2>"$work/apply.err"; then
    cat "$work/apply.log" "$work/apply.err" >&2
    fail "the API server refused objects of the $name render"
  fi
  # kubectl's own note when an object (here the CRDs, installed server-side by the tests or
  # `backup-warden crd | kubectl apply --server-side`) was not created by client-side apply
  # is not about the object; every other warning, the API server's included, fails.
  grep -v 'is missing the kubectl.kubernetes.io/last-applied-configuration annotation' \
    "$work/apply.err" >"$work/warnings" || true
  if grep -qi 'warning' "$work/warnings"; then
    cat "$work/warnings" >&2
    fail "the API server warned about objects of the $name render"
  fi
  sed 's/^/  /' "$work/apply.log" >&2
  objects=$(grep -c . "$work/apply.log")
  expected=$(grep -cE '^kind: ' "$work/$name.yaml")
  [ "$objects" -eq "$expected" ] || fail "$name render: $expected objects, but the API server answered for $objects"
  # NOTES.txt, which helm template leaves out (install --dry-run=client asks the server
  # for its version, hence here)
  step "NOTES.txt: the first BackedUpDatabase it shows, kubectl apply --dry-run=server ($name)"
  "$helm" install "$release" "$chart" --dry-run=client --namespace "$namespace" "${args[@]}" \
    >"$work/$name.install" 2>"$work/notes.log" ||
    { cat "$work/notes.log" >&2; fail "helm install --dry-run=client ($name): NOTES.txt"; }
  sed -n '/^NOTES:/,$p' "$work/$name.install" >"$work/$name.notes"
  [ -s "$work/$name.notes" ] || fail "helm install --dry-run=client ($name) printed no NOTES"
  sed -n "/^  cat <<'YAML'/,/^  YAML$/p" "$work/$name.notes" | sed '1d;$d; s/^  //' >"$work/$name.example"
  [ -s "$work/$name.example" ] || fail "the NOTES of the $name render show no BackedUpDatabase to apply"
  "$kubectl" apply --dry-run=server --validate=strict -f - <"$work/$name.example" 2>&1 | sed 's/^/  /' >&2 ||
    fail "the BackedUpDatabase NOTES.txt suggests ($name) is refused by the CRD"
done

echo "chart check: crds/ in sync; lint, template and server dry-run passed for ${#cases[@]} value sets (helm $HELM_VERSION, Kubernetes $kube_version)"
