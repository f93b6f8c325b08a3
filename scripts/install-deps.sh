#!/usr/bin/env bash
# Installs what a fresh Debian or Ubuntu machine lacks to build and test
# tessera, and nothing when it is all there already. Safe to run repeatedly.
#
# Needs: a Rust toolchain (cargo), GDAL's development files (libgdal-dev) and
# pkg-config. Uses sudo only when not running as root.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing. Install Rust first: https://rustup.rs" >&2
    exit 1
fi

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists gdal 2>/dev/null; then
    missing+=(libgdal-dev)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The tests drive the interactive demo clients in a real terminal.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: please install ${missing[*]} with your system's package manager" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
