#!/usr/bin/env bash
# The local environment the tests and the demo use: etcd + kube-apiserver (TLS, client
# certificate kubeconfig) and the AWS emulator (moto with backup-warden's extension), all
# on 127.0.0.1. Binaries are built or installed on first use and cached outside the checkout.
#
#   hack/local-env.sh up [--owner-pid PID]   start what is not running (reuses running ones);
#                                             with --owner-pid, stop what this call started
#                                             once PID exits
#   hack/local-env.sh restart NAME            stop kube-apiserver or moto and start it again,
#                                             keeping the cluster's and the emulator's data
#   hack/local-env.sh down                    stop everything and wipe the etcd data
#   hack/local-env.sh env                     print the environment file to source
#   hack/local-env.sh status                  say what runs
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
state=${BACKUP_WARDEN_STATE:-$cache/run}
etcd_port=${BACKUP_WARDEN_ETCD_PORT:-23790}
etcd_peer_port=$((etcd_port + 10))
api_port=${BACKUP_WARDEN_APISERVER_PORT:-16443}
moto_port=${BACKUP_WARDEN_MOTO_PORT:-15000}
pki="$state/pki"
env_file="$state/env"

log() { echo "local-env: $*" >&2; }

pid_alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

wait_for() { # name url [curl args...]
  local name=$1 url=$2; shift 2
  for _ in $(seq 1 240); do
    if curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null; then return 0; fi
    if ! pid_alive "$name"; then log "$name exited; last lines of $state/$name.log:"; tail -n 30 "$state/$name.log" >&2; return 1; fi
    sleep 0.25
  done
  log "$name did not become ready at $url within 60s; see $state/$name.log"; return 1
}

start() { # name command...: detached from this shell, so it outlives the caller
  local name=$1; shift
  setsid "$@" >"$state/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$state/$name.pid"
}

api_ready() { curl -fsS -o /dev/null --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$api_port/readyz" 2>/dev/null; }
moto_ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$moto_port/moto-api/backup-warden" 2>/dev/null; }

make_pki() {
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  ( cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=backup-warden-local-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    # system:masters makes this client certificate a cluster admin
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile admin.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null )
}

write_kubeconfig() {
  cat > "$state/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: backup-warden-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 < "$pki/admin.crt")
    client-key-data: $(base64 -w0 < "$pki/admin.key")
contexts:
- name: backup-warden-local
  context: {cluster: backup-warden-local, user: admin}
current-context: backup-warden-local
KUBECONFIG
}

start_apiserver() { # bin-dir
  local bin=$1
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode RBAC \
    --disable-admission-plugins ServiceAccount --enable-priority-and-fairness=false \
    --event-ttl 1h --v 1
  wait_for kube-apiserver "https://127.0.0.1:$api_port/readyz" --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key"
}

# The emulator keeps its RDS and KMS state in this file across `restart moto`.
start_moto() {
  local py; py=$("$here/moto-venv.sh")
  BACKUP_WARDEN_MOTO_STATE_FILE="$state/moto-state.pickle" \
    start moto "$py" "$repo/tests/emulator/backup_warden_moto.py" --host 127.0.0.1 --port "$moto_port"
  wait_for moto "http://127.0.0.1:$moto_port/moto-api/backup-warden"
}

# Stops one part and starts it again with its data: etcd keeps what the API server stored,
# the emulator writes its state on SIGTERM and reads it back (an outage, not a new account).
restart() { # kube-apiserver | moto
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
  case "$1" in
    kube-apiserver) stop_one kube-apiserver; start_apiserver "$(cat "$state/bin-dir")" ;;
    moto) stop_one moto; start_moto ;;
    *) log "restart: kube-apiserver or moto, not $1"; return 2 ;;
  esac
  log "restarted $1"
}

up() {
  local owner_pid=""
  if [ "${1:-}" = "--owner-pid" ]; then owner_pid=$2; fi
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
  local started=()

  if ! { pid_alive etcd && pid_alive kube-apiserver && api_ready; }; then
    local bin; bin=$("$here/build-control-plane.sh")
    make_pki
    stop_one kube-apiserver; stop_one etcd
    rm -rf "$state/etcd-data"
    start etcd "$bin/etcd" --name local --data-dir "$state/etcd-data" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
      --initial-cluster "local=http://127.0.0.1:$etcd_peer_port" --unsafe-no-fsync --log-level warn
    wait_for etcd "http://127.0.0.1:$etcd_port/health"
    start_apiserver "$bin"
    write_kubeconfig
    echo "$bin" > "$state/bin-dir"
    started+=(kube-apiserver etcd)
  fi

  if ! { pid_alive moto && moto_ready; }; then
    stop_one moto
    rm -f "$state/moto-state.pickle"
    start_moto
    started+=(moto)
  fi

  cat > "$env_file" <<ENV
export KUBECONFIG=$state/kubeconfig
export BACKUP_WARDEN_KUBECTL=$(cat "$state/bin-dir")/kubectl
export BACKUP_WARDEN_AWS_ENDPOINT=http://127.0.0.1:$moto_port
ENV
  if [ -n "$owner_pid" ] && [ ${#started[@]} -gt 0 ]; then
    # stop what this call started once its owner is gone (not what replaced it meanwhile)
    local owned=()
    for n in "${started[@]}"; do owned+=("$n:$(cat "$state/$n.pid")"); done
    setsid bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$1" release "${@:2}"' \
      "$owner_pid" "$0" "${owned[@]}" >/dev/null 2>&1 < /dev/null 9>&- &
  fi
  log "up: ${started[*]:-everything was already running}; source $env_file"
  echo "$env_file"
}

stop_one() {
  local name=$1 pid
  [ -f "$state/$name.pid" ] || return 0
  pid=$(cat "$state/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid"
  if [ "$name" = etcd ]; then rm -rf "$state/etcd-data"; fi
}

down() {
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
  stop_one moto; stop_one kube-apiserver; stop_one etcd
  rm -f "$env_file" "$state/moto-state.pickle"
  log "down"
}

release() { # name:pid...: stop each one still running under that pid
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock 9
  local entry
  for entry in "$@"; do
    if [ "$(cat "$state/${entry%%:*}.pid" 2>/dev/null)" = "${entry#*:}" ]; then stop_one "${entry%%:*}"; fi
  done
}

status() {
  for n in etcd kube-apiserver moto; do
    if pid_alive "$n"; then echo "$n: running (pid $(cat "$state/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  stop-one) stop_one "$2" ;;
  restart) restart "$2" ;;
  release) shift; release "$@" ;;
  env) cat "$env_file" ;;
  status) status ;;
  *) echo "usage: $0 up [--owner-pid PID] | restart kube-apiserver|moto | down | env | status" >&2; exit 2 ;;
esac
