#!/usr/bin/env bash
# Builds (release) and runs a Fluxo broker on the embedded defaults; extra
# arguments go to the broker (e.g. ./run.sh --config config/fluxo.yaml).
# On a fresh Debian/Ubuntu machine it first installs what RocksDB's build needs.
set -euo pipefail
cd "$(dirname "$0")"
if ! dpkg -s libclang-dev >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "fluxo: installing libclang-dev (needed to build RocksDB)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev clang >/dev/null
fi
exec cargo run --release --bin fluxo -- "$@"
