#!/usr/bin/env bash
# Installs Chromium (for the report's headless-browser test) if it is missing and prints its
# path. It comes from Debian's `chromium` package; when chromium is already on PATH (or
# CHROMIUM names it) this does nothing and is instant. Installing needs root (or sudo) and
# Debian's package repositories.
set -euo pipefail

if [ -n "${CHROMIUM:-}" ]; then
  if [ -x "$CHROMIUM" ]; then echo "$CHROMIUM"; exit 0; fi
  echo "CHROMIUM=$CHROMIUM is not an executable file" >&2
  exit 1
fi
for name in chromium chromium-browser; do
  if bin=$(command -v "$name" 2>/dev/null); then
    echo "$bin"
    exit 0
  fi
done

fail() {
  echo "error: could not install chromium: $*" >&2
  echo "install it by hand (Debian/Ubuntu: apt-get install chromium) and put it on PATH," >&2
  echo "or set CHROMIUM=/path/to/chromium" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (not a Debian-based system)"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and sudo not found"
  sudo=(sudo)
fi

echo "installing chromium from Debian's package (first time only)" >&2
export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 -q)
"${apt[@]}" update >&2 || fail "apt-get update failed"
"${apt[@]}" install -y --no-install-recommends chromium >&2 || fail "apt-get install chromium failed"

bin=$(command -v chromium 2>/dev/null) || fail "the chromium package installed no chromium on PATH"
echo "$bin"
