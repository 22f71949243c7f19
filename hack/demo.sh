#!/usr/bin/env bash
# `make demo`: the whole loop, locally. The environment comes up (kube-apiserver + etcd, the
# AWS emulator); a non-compliant database and a repository without the backup workflow are
# declared; the controller fixes both; a drift is injected and healed; the Slack messages and
# drift metrics are shown, and the evidence for auditors is written to S3 and turned into a
# report and a data-flow map. The environment keeps running afterwards; `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/prereqs.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the local environment: etcd, kube-apiserver and the AWS emulator on 127.0.0.1"
say "(the first run builds kube-apiserver, kubectl and etcd from source and installs moto: several minutes)"
env_file=$(hack/local-env.sh up)
# shellcheck disable=SC1090
. "$env_file"

say "Building backup-warden and the demo"
cargo build --quiet --locked --example demo
cargo run --quiet --locked --example demo

cat <<DONE

To look around yourself:
  source $env_file && \$BACKUP_WARDEN_KUBECTL get bdb,brepo -A
Stop everything with:  make down
DONE
