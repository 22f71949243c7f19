#!/usr/bin/env bash
# Checks the toolchains the README lists; everything else the tooling installs itself.
set -euo pipefail
missing=()
for tool in cargo go python3 curl openssl flock setsid; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
cargo fmt --version >/dev/null 2>&1 || missing+=("rustfmt (rustup component add rustfmt)")
cargo clippy --version >/dev/null 2>&1 || missing+=("clippy (rustup component add clippy)")
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3 venv (apt-get install python3-venv)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing prerequisites: ${missing[*]}" >&2
  echo "backup-warden needs the Rust and Go toolchains, Python 3 and make; see README.md" >&2
  exit 1
fi
