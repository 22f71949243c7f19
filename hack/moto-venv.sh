#!/usr/bin/env bash
# Creates a Python virtualenv with moto[server] (the AWS emulator the tests run against)
# in a cache outside the checkout and prints the venv's python on stdout. Progress goes to
# stderr. Installs only when the pinned MOTO_VERSION changes (or an install never finished).
# Usage: PY=$(hack/moto-venv.sh) && "$PY" tests/emulator/backup_warden_moto.py --port 15000
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${BACKUP_WARDEN_CACHE:-$HOME/.cache/backup-warden}
venv="$cache/moto-$MOTO_VERSION"
py="$venv/bin/python"
marker="$venv/.installed-moto-$MOTO_VERSION"
if [ -f "$marker" ] && [ -x "$py" ]; then
  echo "$py"; exit 0
fi

# Concurrent first runs (parallel tests) wait for one installer instead of racing it.
mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
  if [ -f "$marker" ] && [ -x "$py" ]; then
    echo "$py"; exit 0
  fi
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "moto-venv: no python3 found (set PYTHON=...)" >&2; exit 1; }

echo "moto-venv: installing moto[server]==$MOTO_VERSION into $venv (first time only)" >&2
# A half-finished venv (interrupted install) is rebuilt from scratch.
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
"$py" -c 'import moto, boto3, flask; print("moto-venv: moto", moto.__version__)' >&2
touch "$marker"
echo "$py"
