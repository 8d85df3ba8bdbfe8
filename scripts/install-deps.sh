#!/usr/bin/env bash
# Installs the Debian 12 packages Paddock builds, runs and tests with; a no-op when all are there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git curl
  libpoco-dev libboost-dev libboost-filesystem-dev libtomlplusplus-dev libspdlog-dev
  prometheus-cpp-dev libsqlite3-dev libpq-dev postgresql libgtest-dev libgmock-dev libssl-dev libarchive-dev libyaml-cpp-dev
  libseccomp-dev bubblewrap util-linux e2fsprogs prometheus binutils procps python3 python3-yaml clang-format
  podman buildah debootstrap adduser  # the image and package tests
  wrk slowhttptest  # the front door's load tests and benchmark
  gnutls-bin  # the egress CA's certificates checked by GnuTLS (certtool, gnutls-cli)
  clang  # libFuzzer: the fuzz targets (scripts/fuzz.sh)
  chromium  # the dashboard's browser tests (playwright-core drives /usr/bin/chromium)
)

# Node.js and npm: the agent harnesses install their CLIs from npm (Codex runs on node). Any
# node already on PATH will do; Debian's otherwise.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" </dev/null
