#!/usr/bin/env bash
# Checks the Helm chart charts/backup-warden (and the bases of the image it runs):
#   1. its crds/ are the same files as the repository's crds/
#   2. the Dockerfile's base images are pinned by digest
#   3. `helm lint --strict` and `helm template` with the default values, with them on a
#      cluster that serves the Prometheus Operator's kinds, and with every ci/*-values.yaml
#      (values.schema.json is applied by both)
#   4. what the renders hold: the ServiceMonitor and PrometheusRule only where their API
#      exists (or forced), labelled for kube-prometheus-stack; the aggregated ClusterRoles;
#      the NetworkPolicy only when enabled; the Grafana dashboard's sidecar label
#   5. values the chart must refuse are refused (schema and template checks)
#   6. no render contains a Secret (Secrets are mounted, never rendered)
#   7. `helm install` with the default values into a fresh namespace of the local
#      environment's kube-apiserver (hack/local-env.sh), which serves no monitoring.coreos.com:
#      it succeeds, its objects exist, its ServiceAccount may do what the controller does and
#      nothing more, and its aggregated roles are picked up by view, edit and admin (asked of
#      the API server's authorizer); then it is uninstalled
#   8. every rendered object, CRDs included, is accepted by that API server with
#      `kubectl apply --dry-run=server`, in namespaces that enforce the restricted Pod
#      Security Standard; any warning fails
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
installed="" # the release (and namespace) of the install step, until it is removed
cleanup() {
  if [ -n "$installed" ]; then
    echo "chart check: removing release and namespace $installed" >&2
    "$helm" uninstall "$installed" --namespace "$installed" >/dev/null 2>&1 || true
    remove_namespace "$installed" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

step "CRDs: $chart/crds/ is a copy of crds/"
if ! diff -ru crds "$chart/crds" >"$work/crds.diff" 2>&1; then
  cat "$work/crds.diff" >&2
  fail "$chart/crds/ differs from crds/; run '$sync_cmd' and commit the result"
fi

step "docs/installation.md states the Kubernetes version Chart.yaml requires"
# kubeVersion: ">=1.28.0-0" -> 1.28; the guide's requirement line must name the same minor.
min_kube=$(sed -n 's/^kubeVersion: *">=\([0-9]*\.[0-9]*\)\..*/\1/p' "$chart/Chart.yaml")
[ -n "$min_kube" ] || fail "no kubeVersion \">=X.Y...\" in $chart/Chart.yaml"
grep -q "^- A Kubernetes cluster, $min_kube or newer" docs/installation.md ||
  fail "docs/installation.md does not say 'A Kubernetes cluster, $min_kube or newer' (Chart.yaml kubeVersion)"
# and every kubeVersion the docs quote is the chart's
stated=$(grep -rhoE 'kubeVersion: *"?>=[0-9]+\.[0-9]+' docs README.md "$chart/README.md" | grep -oE '[0-9]+\.[0-9]+$' | sort -u)
for v in $stated; do
  [ "$v" = "$min_kube" ] || fail "the docs quote kubeVersion >=$v, Chart.yaml says >=$min_kube"
done

step "Dockerfile: base images pinned by digest"
# A tag moves when its image is rebuilt; the digest (the multi-platform index's) does not.
froms=$(sed -n 's/^FROM[[:space:]]\{1,\}\(--platform=[^[:space:]]*[[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' Dockerfile)
[ -n "$froms" ] || fail "no FROM in the Dockerfile"
stages=$(sed -n 's/^FROM.*[[:space:]][Aa][Ss][[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' Dockerfile)
for image in $froms; do
  if printf '%s\n' "$stages" | grep -xF "$image" >/dev/null; then continue; fi # an earlier stage
  printf '%s\n' "$image" | grep -E '^[^@]+:[^@/]+@sha256:[0-9a-f]{64}$' >/dev/null ||
    fail "the Dockerfile's base $image is not pinned as image:tag@sha256:<digest>"
  echo "  $image" >&2
done
# the OCI label names the final base's digest too
final=$(printf '%s\n' "$froms" | tail -n 1)
grep -qF "org.opencontainers.image.base.digest=\"${final#*@}\"" Dockerfile ||
  fail "the Dockerfile's org.opencontainers.image.base.digest label is not ${final#*@}"

helm=$("$root/hack/helm.sh")
# shellcheck source=SCRIPTDIR/versions.env
. "$root/hack/versions.env"
# render for the Kubernetes version the local API server runs
kube_version=$KUBERNETES_VERSION
step "helm: $("$helm" version --short) ($helm)"

# The value sets: the defaults, the defaults on a cluster that serves the Prometheus
# Operator's kinds (helm template knows no cluster: --api-versions says what it serves), and
# each ci/*-values.yaml.
monitoring_apis=(--api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule)
cases=(default prometheus-operator)
for f in "$chart"/ci/*-values.yaml; do cases+=("$(basename "$f" .yaml)"); done
case_args() { # name: sets args
  case $1 in
    # the defaults grant no tenancy (refused below): say single team
    default) args=(--set tenancy.singleTeam=true) ;;
    prometheus-operator) args=(--set tenancy.singleTeam=true "${monitoring_apis[@]}") ;;
    *) args=(-f "$chart/ci/$1.yaml") ;;
  esac
}

for name in "${cases[@]}"; do
  case_args "$name"
  # helm lint takes no --api-versions: prometheus-operator lints as default does
  if [ "$name" != prometheus-operator ]; then
    step "helm lint --strict ($name)"
    "$helm" lint --strict "$chart" --namespace "$namespace" --kube-version "$kube_version" "${args[@]}" >"$work/lint.log" 2>&1 ||
      { cat "$work/lint.log" >&2; fail "helm lint ($name)"; }
  fi
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

# (Under pipefail, `producer | grep -q` can fail: grep quits at the first match and the
# producer dies writing to the closed pipe. The pipelines below let grep read everything.)

# The YAML documents of one kind (and metadata.name, when given) in a render on stdin.
doc() { # kind [name]
  awk -v kind="$1" -v name="${2:-}" '
    function flush() { if (k == kind && (name == "" || n == name)) printf "%s", buf; buf = ""; k = ""; n = "" }
    /^---/ { flush(); next }
    { buf = buf $0 "\n" }
    /^kind: / { k = $2 }
    /^  name: / && n == "" { n = $2 }
    END { flush() }'
}
# The metadata.labels of the first object of that kind, as "key: value" lines.
labels_of() { # kind render
  doc "$1" <"$2" | sed -n '/^  labels:$/,/^  [^ ]/p' | sed -n 's/^    \([^ ].*\)$/\1/p'
}
has_kind() { grep -qx "kind: $1" "$2"; } # kind render
render() { # name, then helm template arguments (on top of a single-team tenancy)
  local name=$1; shift
  "$helm" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_version" \
    --set tenancy.singleTeam=true "$@" >"$work/$name.yaml" 2>"$work/template.log" ||
    { cat "$work/template.log" >&2; fail "helm template ($name)"; }
}

step "monitoring objects: only where the Prometheus Operator's API exists, labelled for kube-prometheus-stack"
for kind in ServiceMonitor PrometheusRule; do
  # a cluster without the Prometheus Operator's CRDs: nothing it would refuse
  ! has_kind "$kind" "$work/default.yaml" ||
    fail "the default render has a $kind although the cluster serves no monitoring.coreos.com/v1 $kind"
  has_kind "$kind" "$work/prometheus-operator.yaml" ||
    fail "no $kind in the default render on a cluster that serves monitoring.coreos.com/v1 $kind"
  # kube-prometheus-stack's Prometheus selects release: <its release name>
  labels_of "$kind" "$work/prometheus-operator.yaml" | grep -x 'release: kube-prometheus-stack' >/dev/null ||
    fail "the $kind is not labelled release: kube-prometheus-stack by default"
done
render monitoring-off "${monitoring_apis[@]}" --set serviceMonitor.enabled=false --set prometheusRule.enabled=false
render monitoring-forced --set serviceMonitor.enabled=true --set prometheusRule.enabled=true
for kind in ServiceMonitor PrometheusRule; do
  ! has_kind "$kind" "$work/monitoring-off.yaml" || fail "a $kind is rendered although disabled"
  has_kind "$kind" "$work/monitoring-forced.yaml" || fail "no $kind although enabled: true"
done
# monitoring.labels on both, each object's own labels on top
labels_of ServiceMonitor "$work/all-values.yaml" >"$work/labels"
for label in 'release: prometheus' 'team: platform' 'scrape: backup-warden'; do
  grep -qx "$label" "$work/labels" || { cat "$work/labels" >&2; fail "the all-values ServiceMonitor is not labelled $label"; }
done
labels_of PrometheusRule "$work/all-values.yaml" | grep -x 'release: prometheus-rules' >/dev/null ||
  fail "prometheusRule.labels does not win over monitoring.labels"

step "Grafana dashboard: labelled for the dashboard sidecar (grafana_dashboard: \"1\")"
render grafana --set grafanaDashboard.enabled=true
labels_of ConfigMap "$work/grafana.yaml" | grep -x 'grafana_dashboard: "1"' >/dev/null ||
  fail "the dashboard ConfigMap is not labelled grafana_dashboard: \"1\""

step "aggregated ClusterRoles: <name>-view and <name>-edit by default"
for role in view edit; do
  doc ClusterRole "$release-$role" <"$work/default.yaml" | grep . >/dev/null ||
    fail "no ClusterRole $release-$role in the default render"
done
render no-aggregation --set rbac.aggregateToDefaultRoles=false
! doc ClusterRole "$release-view" <"$work/no-aggregation.yaml" | grep . >/dev/null ||
  fail "a ClusterRole $release-view although rbac.aggregateToDefaultRoles=false"

step "NetworkPolicy: only when enabled; metrics in, DNS, API server and HTTPS out"
! has_kind NetworkPolicy "$work/default.yaml" || fail "the default render has a NetworkPolicy"
doc NetworkPolicy <"$work/network-policy-values.yaml" >"$work/netpol"
grep -qx '  policyTypes: \[Ingress, Egress\]' "$work/netpol" ||
  { cat "$work/netpol" >&2; fail "the NetworkPolicy does not restrict both ingress and egress"; }
for port in 'port: http' 'port: 53' 'port: 443' 'port: 6443'; do
  grep -qE "^ +- $port\$" "$work/netpol" || { cat "$work/netpol" >&2; fail "the NetworkPolicy allows no $port"; }
done
grep -qx '          protocol: UDP' "$work/netpol" || fail "the NetworkPolicy allows no DNS over UDP"
# the GitHub webhook port: only when the receiver is enabled (all-values), from its peers
! grep -q 'github-webhook' "$work/netpol" || fail "the NetworkPolicy opens the GitHub webhook port although githubWebhook.enabled is false"
doc NetworkPolicy <"$work/all-values.yaml" | grep -E '^ +- port: github-webhook$' >/dev/null ||
  fail "the all-values NetworkPolicy does not let the GitHub webhook port in"
doc Service <"$work/all-values.yaml" | grep -E '^ +- name: github-webhook$' >/dev/null ||
  fail "the all-values Service has no github-webhook port"
! doc Service <"$work/default.yaml" | grep -E 'github-webhook' >/dev/null ||
  fail "the default Service has a github-webhook port although githubWebhook.enabled is false"

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
refuse "a monitoring switch that is neither auto, true nor false" --set serviceMonitor.enabled=sometimes
refuse "a NetworkPolicy CIDR that is not one" --set networkPolicy.enabled=true \
  --set 'networkPolicy.egress.https.cidrs={api.github.com}'
refuse "a NetworkPolicy port out of range" --set networkPolicy.enabled=true \
  --set 'networkPolicy.egress.apiServer.ports={0}'
refuse "a GitHub webhook receiver without its Secret" --set githubWebhook.enabled=true
refuse "a GitHub webhook receiver on the metrics port" --set githubWebhook.enabled=true \
  --set githubWebhook.secretName=s --set githubWebhook.port=8080
refuse "a GitHub webhook receiver on the Service's port" --set githubWebhook.enabled=true \
  --set githubWebhook.secretName=s --set githubWebhook.port=9090 --set service.port=9090
refuse "a dead-letter queue without a queue" \
  --set events.deadLetterQueueUrl=https://sqs.us-east-1.amazonaws.com/123456789012/dlq
refuse "a queue URL that is not one" --set events.queueUrl=backup-warden-events
[ "$refused" -eq 0 ] || fail "values.schema.json or the template checks accept invalid values"

step "local environment (kube-apiserver + etcd)"
env_file=$("$root/hack/local-env.sh" up --owner-pid $$)
# shellcheck disable=SC1090
. "$env_file"
kubectl=${BACKUP_WARDEN_KUBECTL:?the local environment did not name kubectl}

step "backup-warden's CRDs (server-side apply), so that the dry runs can check objects of its kinds"
"$kubectl" apply --server-side --force-conflicts -f crds/ >/dev/null || fail "could not install crds/"
"$kubectl" wait --for condition=established --timeout=60s \
  crd/backedupdatabases.backupwarden.io crd/backeduprepositories.backupwarden.io \
  crd/backupcoverages.backupwarden.io >/dev/null ||
  fail "backup-warden's CRDs did not become established"

# No kube-controller-manager runs here, so nothing empties and finalizes a deleted namespace:
# the check does both, as the namespace controller would.
remove_namespace() { # name
  local types
  types=$("$kubectl" api-resources --namespaced --verbs=delete -o name | paste -sd, -)
  # best effort: a kind the tests take away for a moment must not stop the rest
  "$kubectl" delete "$types" --all --namespace "$1" --wait=false >/dev/null 2>&1 || true
  "$kubectl" delete namespace "$1" --wait=false --ignore-not-found >/dev/null
  printf '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"%s"},"spec":{"finalizers":[]}}' "$1" |
    "$kubectl" replace --raw "/api/v1/namespaces/$1/finalize" -f - >/dev/null
}

step "helm install with the default values on a cluster without the Prometheus Operator"
# A bare cluster: the API server the tests share must not serve monitoring.coreos.com (this
# check's own stand-ins live under another group, below).
if "$kubectl" api-resources --api-group=monitoring.coreos.com -o name | grep . >/dev/null; then
  fail "the local API server serves monitoring.coreos.com (stand-ins an earlier version of this check installed?): delete them (kubectl delete crd -l app.kubernetes.io/part-of=backup-warden-chart-check) or restart the local environment"
fi
# Its own release and namespace, apart from the tests' and any other run's; the CRDs are
# shared (installed above; helm skips them and never deletes them).
installed=backup-warden-install-$(date +%s)-$$
cat <<NS | "$kubectl" apply -f - >/dev/null || fail "could not create namespace $installed"
apiVersion: v1
kind: Namespace
metadata:
  name: $installed
  labels:
    app.kubernetes.io/part-of: backup-warden-chart-check
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
NS
# Only what the chart requires: a tenancy choice. No --wait: no node runs the pods here.
if ! "$helm" install "$installed" "$chart" --namespace "$installed" --set tenancy.singleTeam=true \
  >"$work/install.log" 2>&1; then
  cat "$work/install.log" >&2
  fail "helm install with the default values failed on a cluster without the Prometheus Operator"
fi
# helm's note on the local kubeconfig's file mode is not about the chart
if grep -v 'Kubernetes configuration file is \(group\|world\)-readable' "$work/install.log" | grep -i 'warning' >/dev/null; then
  cat "$work/install.log" >&2
  fail "the API server warned about objects of the default install"
fi
"$helm" status "$installed" --namespace "$installed" | grep -x 'STATUS: deployed' >/dev/null ||
  fail "release $installed is not deployed"
"$helm" get manifest "$installed" --namespace "$installed" >"$work/installed.yaml"
if grep -q '^apiVersion: monitoring.coreos.com/' "$work/installed.yaml"; then
  fail "the default install holds Prometheus Operator objects on a cluster without their API"
fi
"$kubectl" get -f "$work/installed.yaml" -o name >"$work/installed.names" ||
  fail "objects of release $installed are missing"
sed 's/^/  /' "$work/installed.names" >&2
[ "$(grep -c . "$work/installed.names")" -eq "$(grep -c '^kind: ' "$work/installed.yaml")" ] ||
  fail "release $installed: the API server does not have every object of its manifest"
"$kubectl" get crd backedupdatabases.backupwarden.io backeduprepositories.backupwarden.io \
  backupcoverages.backupwarden.io retainedaudittrails.backupwarden.io >/dev/null ||
  fail "the CRDs are missing after the install"

# Asks the API server's authorizer (SubjectAccessReview) what a user may do, and compares it
# with the expected answers on stdin, one a line:
#   yes|no VERB GROUP RESOURCE SUBRESOURCE NAMESPACE NAME    (core: the "" group; -: none)
access_wrong=0
expect_access() { # user, groups (a JSON list)
  local user=$1 groups=$2 want verb group resource sub ns name got
  while read -r want verb group resource sub ns name; do
    [ -n "$want" ] || continue
    [ "$group" != core ] || group=""
    [ "$sub" != - ] || sub=""
    [ "$ns" != - ] || ns=""
    [ "$name" != - ] || name=""
    got=$(printf '{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"%s","groups":%s,"resourceAttributes":{"verb":"%s","group":"%s","resource":"%s","subresource":"%s","namespace":"%s","name":"%s"}}}' \
      "$user" "$groups" "$verb" "$group" "$resource" "$sub" "$ns" "$name" |
      "$kubectl" create -f - -o jsonpath='{.status.allowed}') || fail "SubjectAccessReview for $user"
    if [ "$got" = true ]; then got=yes; else got=no; fi
    if [ "$got" != "$want" ]; then
      echo "  $user: $verb ${group:-core}/$resource${sub:+/$sub}${name:+ $name} in ${ns:-all namespaces}: $got, expected $want" >&2
      access_wrong=1
    fi
  done
}

step "RBAC: the controller's ServiceAccount may do what the controller does, and nothing more"
# What src/ calls: watches (list, watch) of the four kinds cluster-wide, server-side apply
# (and merge patch) of their status, Events through kube's Recorder (events.k8s.io: create, patch),
# the leader Lease (create; get, update of backup-warden) in the release namespace.
expect_access "system:serviceaccount:$installed:$installed" \
  "[\"system:serviceaccounts\",\"system:serviceaccounts:$installed\",\"system:authenticated\"]" <<RULES
yes list   backupwarden.io     backedupdatabases    -      -          -
yes watch  backupwarden.io     backedupdatabases    -      -          -
yes list   backupwarden.io     backeduprepositories -      -          -
yes watch  backupwarden.io     backeduprepositories -      -          -
yes patch  backupwarden.io     backedupdatabases    status team-a     db
yes patch  backupwarden.io     backeduprepositories status team-a     repo
no  get    backupwarden.io     backedupdatabases    status team-a     db
no  update backupwarden.io     backedupdatabases    status team-a     db
no  update backupwarden.io     backeduprepositories status team-a     repo
no  create backupwarden.io     backedupdatabases    -      team-a     -
no  patch  backupwarden.io     backeduprepositories -      team-a     repo
no  delete backupwarden.io     backedupdatabases    -      team-a     db
yes list   backupwarden.io     retainedaudittrails  -      -          -
yes watch  backupwarden.io     retainedaudittrails  -      -          -
yes patch  backupwarden.io     retainedaudittrails  status team-a     trail
no  update backupwarden.io     retainedaudittrails  -      team-a     trail
no  delete backupwarden.io     retainedaudittrails  -      team-a     trail
yes list   backupwarden.io     backupcoverages      -      -          -
yes watch  backupwarden.io     backupcoverages      -      -          -
yes patch  backupwarden.io     backupcoverages      status -          company
no  update backupwarden.io     backupcoverages      -      -          company
no  delete backupwarden.io     backupcoverages      -      -          company
yes create events.k8s.io       events               -      team-a     -
yes patch  events.k8s.io       events               -      team-a     db.1
no  create core                events               -      team-a     -
no  patch  core                events               -      team-a     db.1
yes create coordination.k8s.io leases               -      $installed -
yes get    coordination.k8s.io leases               -      $installed backup-warden
yes update coordination.k8s.io leases               -      $installed backup-warden
no  update coordination.k8s.io leases               -      $installed another-controller
no  create coordination.k8s.io leases               -      team-a     -
no  get    core                secrets              -      $installed -
no  list   core                secrets              -      -          -
no  list   core                configmaps           -      -          -
RULES
[ "$access_wrong" -eq 0 ] || fail "the controller's RBAC differs from what the controller does"

step "aggregated ClusterRoles: picked up by the built-in view, edit and admin"
# The selectors of each built-in role's aggregationRule, as the API server bootstrapped them
# (the aggregation itself is kube-controller-manager's, which does not run here).
for builtin in view edit admin; do
  picked=$(
    # shellcheck disable=SC2016 # a go-template, not shell
    "$kubectl" get clusterrole "$builtin" \
      -o go-template='{{range .aggregationRule.clusterRoleSelectors}}{{range $k, $v := .matchLabels}}{{$k}}={{$v}},{{end}}{{"\n"}}{{end}}' |
      while read -r selector; do "$kubectl" get clusterrole -l "${selector%,}" -o name; done
  )
  for role in view edit; do
    want=yes
    if [ "$builtin" = view ] && [ "$role" = edit ]; then want=no; fi
    got=no
    if printf '%s\n' "$picked" | grep -x "clusterrole.rbac.authorization.k8s.io/$installed-$role" >/dev/null; then got=yes; fi
    [ "$got" = "$want" ] || fail "the built-in ClusterRole $builtin picks up $installed-$role: $got, expected $want"
  done
done
# What each grants, to someone bound to it in one namespace: the objects, never their status.
for role in view edit; do
  "$kubectl" create rolebinding "check-$role" --namespace "$installed" --clusterrole "$installed-$role" \
    --user "chart-check-$role" >/dev/null || fail "could not bind $installed-$role"
done
expect_access chart-check-view '["system:authenticated"]' <<RULES
yes get              backupwarden.io backedupdatabases    -      $installed db
yes list             backupwarden.io backedupdatabases    -      $installed -
yes watch            backupwarden.io backeduprepositories -      $installed -
yes get              backupwarden.io backeduprepositories status $installed repo
yes list             backupwarden.io retainedaudittrails  -      $installed -
no  create           backupwarden.io retainedaudittrails  -      $installed -
no  create           backupwarden.io backedupdatabases    -      $installed -
no  list             backupwarden.io backedupdatabases    -      team-a     -
RULES
expect_access chart-check-edit '["system:authenticated"]' <<RULES
yes create           backupwarden.io backedupdatabases    -      $installed -
yes update           backupwarden.io backeduprepositories -      $installed repo
yes patch            backupwarden.io backedupdatabases    -      $installed db
yes delete           backupwarden.io backeduprepositories -      $installed repo
yes deletecollection backupwarden.io backedupdatabases    -      $installed -
yes create           backupwarden.io retainedaudittrails  -      $installed -
no  patch            backupwarden.io retainedaudittrails  status $installed trail
no  patch            backupwarden.io backedupdatabases    status $installed db
no  update           backupwarden.io backeduprepositories status $installed repo
no  create           backupwarden.io backedupdatabases    -      team-a     -
RULES
[ "$access_wrong" -eq 0 ] || fail "the aggregated ClusterRoles grant other than view and edit of the kinds"

step "helm uninstall, and the namespace removed"
"$helm" uninstall "$installed" --namespace "$installed" >/dev/null || fail "helm uninstall $installed"
left=$("$kubectl" get -f "$work/installed.yaml" --ignore-not-found -o name)
[ -z "$left" ] || fail "left after helm uninstall: $left"
remove_namespace "$installed" || fail "could not remove namespace $installed"
! "$kubectl" get namespace "$installed" >/dev/null 2>&1 || fail "namespace $installed is still there"
installed=""

step "test-only stand-ins for the monitoring.coreos.com CRDs ($chart/ci/monitoring-crds.yaml)"
# Under the group monitoring.chart-check.invalid, to which the dry runs below rewrite the
# Prometheus Operator objects: monitoring.coreos.com itself stays absent (see above).
"$kubectl" apply -f "$chart/ci/monitoring-crds.yaml" >/dev/null || fail "could not install $chart/ci/monitoring-crds.yaml"
"$kubectl" wait --for condition=established --timeout=60s \
  crd/servicemonitors.monitoring.chart-check.invalid crd/prometheusrules.monitoring.chart-check.invalid >/dev/null ||
  fail "the stand-in monitoring CRDs did not become established"

# Every namespace the renders use, enforcing the restricted Pod Security Standard, so that a
# pod template that is not restricted (root, capabilities, no seccomp, ...) draws a warning.
namespaces=$(for name in "${cases[@]}"; do cat "$work/$name.yaml"; done | sed -n 's/^  namespace: *\([a-z0-9-]*\) *$/\1/p' | sort -u)
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

for name in "${cases[@]}"; do
  case_args "$name"
  step "kubectl apply --dry-run=server ($name)"
  sed 's#^apiVersion: monitoring\.coreos\.com/v1$#apiVersion: monitoring.chart-check.invalid/v1#' \
    "$work/$name.yaml" >"$work/$name.dry-run.yaml"
  if ! "$kubectl" apply --dry-run=server --validate=strict -f "$work/$name.dry-run.yaml" >"$work/apply.log" 2>"$work/apply.err"; then
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
  # for its version and the mapping of every kind, hence here). The server serves no
  # monitoring.coreos.com and install takes no --api-versions: the Prometheus Operator
  # objects are left out, which changes nothing in the BackedUpDatabase the NOTES show.
  [ "$name" != prometheus-operator ] || continue
  step "NOTES.txt: the first BackedUpDatabase it shows, kubectl apply --dry-run=server ($name)"
  "$helm" install "$release" "$chart" --dry-run=client --namespace "$namespace" "${args[@]}" \
    --set serviceMonitor.enabled=false --set prometheusRule.enabled=false \
    >"$work/$name.install" 2>"$work/notes.log" ||
    { cat "$work/notes.log" >&2; fail "helm install --dry-run=client ($name): NOTES.txt"; }
  sed -n '/^NOTES:/,$p' "$work/$name.install" >"$work/$name.notes"
  [ -s "$work/$name.notes" ] || fail "helm install --dry-run=client ($name) printed no NOTES"
  sed -n "/^  cat <<'YAML'/,/^  YAML$/p" "$work/$name.notes" | sed '1d;$d; s/^  //' >"$work/$name.example"
  [ -s "$work/$name.example" ] || fail "the NOTES of the $name render show no BackedUpDatabase to apply"
  "$kubectl" apply --dry-run=server --validate=strict -f - <"$work/$name.example" 2>&1 | sed 's/^/  /' >&2 ||
    fail "the BackedUpDatabase NOTES.txt suggests ($name) is refused by the CRD"
done

echo "chart check: crds/ in sync, bases pinned; lint, template and server dry-run passed for ${#cases[@]} value sets; default install on a cluster without the Prometheus Operator, RBAC and aggregated roles checked (helm $HELM_VERSION, Kubernetes $kube_version)"
