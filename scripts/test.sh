#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs every test (unit, conformance,
# isolation, end to end). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 300 </dev/null
