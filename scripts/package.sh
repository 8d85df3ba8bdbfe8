#!/usr/bin/env bash
# Installs what is missing, builds the server in Release (build-release/) and makes the Debian
# package build-release/paddock_<version>_amd64.deb (cmake/Package.cmake). Install it with
#   sudo apt-get install ./build-release/paddock_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=build-release BUILD_TYPE=Release bash scripts/build.sh server
(cd build-release && cpack -G DEB >/dev/null)
ls build-release/paddock_*_amd64.deb
