#!/usr/bin/env bash
# Installs promtool (Prometheus' rule checker and rule unit-test runner) if it is missing and
# prints its path. It comes from Debian's `prometheus` package (promtool lands in /usr/bin);
# when promtool is already on PATH (or PROMTOOL names it) this does nothing and is instant.
# Installing needs root (or sudo) and Debian's package repositories.
set -euo pipefail

if [ -n "${PROMTOOL:-}" ]; then
  if [ -x "$PROMTOOL" ]; then echo "$PROMTOOL"; exit 0; fi
  echo "PROMTOOL=$PROMTOOL is not an executable file" >&2
  exit 1
fi
if bin=$(command -v promtool 2>/dev/null); then
  echo "$bin"
  exit 0
fi

fail() {
  echo "error: could not install promtool: $*" >&2
  echo "install it by hand (Debian/Ubuntu: apt-get install prometheus; or a release of" >&2
  echo "github.com/prometheus/prometheus) and put it on PATH, or set PROMTOOL=/path/to/promtool" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (not a Debian-based system)"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and sudo not found"
  sudo=(sudo)
fi

echo "installing promtool from Debian's prometheus package (first time only)" >&2
# The package ships a Prometheus server service: keep its install from starting it. Debian's
# policy-rc.d hook does exactly that; add one for the install only, if the system has none.
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# added by backup-warden hack/promtool.sh for one apt-get install\nexit 101\n' |
    "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
  added_policy=1
fi
cleanup() { if [ -n "$added_policy" ]; then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 -q)
"${apt[@]}" update >&2 || fail "apt-get update failed"
"${apt[@]}" install -y --no-install-recommends prometheus >&2 ||
  fail "apt-get install prometheus failed"

bin=$(command -v promtool 2>/dev/null) || fail "the prometheus package installed no promtool on PATH"
echo "$bin"
