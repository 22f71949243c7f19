#!/usr/bin/env bash
# `make demo`: brings the local environment up, installs the CRDs, applies the examples
# and shows them. It leaves everything running; `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/prereqs.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local environment: etcd, kube-apiserver and the AWS emulator on 127.0.0.1"
say "(the first run builds kube-apiserver, kubectl and etcd from source and installs moto: several minutes)"
env_file=$(hack/local-env.sh up)
# shellcheck disable=SC1090
. "$env_file"
kubectl=$BACKUP_WARDEN_KUBECTL

say "Building backup-warden"
cargo build --quiet --locked
bin=${CARGO_TARGET_DIR:-target}/debug/backup-warden

say "Installing the CRDs: backup-warden crd | kubectl apply --server-side -f -"
"$bin" crd | "$kubectl" apply --server-side -f -
"$kubectl" wait --for=condition=Established crd/backedupdatabases.backupwarden.io crd/backeduprepositories.backupwarden.io --timeout=60s

say "Applying the examples"
"$kubectl" apply -f examples/namespace.yaml
"$kubectl" apply -f examples/

say "kubectl get bdb,brepo -n data-platform"
"$kubectl" get bdb,brepo -n data-platform

say "A manifest that breaks the policy is refused by the API server:"
printf 'apiVersion: backupwarden.io/v1alpha1\nkind: BackedUpDatabase\nmetadata: {name: too-short, namespace: data-platform}\nspec:\n  instance: {identifier: orders-db, region: us-east-1}\n  backups: {retentionDays: 0}\n' \
  | "$kubectl" apply -f - || true

cat <<DONE

The environment keeps running. To use it yourself:
  source $env_file && \$BACKUP_WARDEN_KUBECTL get bdb,brepo -A
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    $bin run --aws-endpoint-url \$BACKUP_WARDEN_AWS_ENDPOINT --log-format text   # the controller, against the emulator
Stop everything with:  make down
DONE
