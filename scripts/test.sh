#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs every test (unit, conformance,
# isolation, end to end, contract, packaging). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The API contract check's validator (tests/contract/package-lock.json).
npm ci --prefix tests/contract --no-audit --no-fund --loglevel=error
# playwright-core for the dashboard's browser tests (tests/browser/package-lock.json).
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
# A Release build of the server, the runtime and the unit tests (what packages and images
# ship, -O3), next to the RelWithDebInfo build every other test runs against.
BUILD_DIR=build-release BUILD_TYPE=Release bash scripts/build.sh server unit_tests
build-release/bin/unit_tests --gtest_brief=1 </dev/null
# ... and the Debian package from it (the package_deb test installs it).
bash scripts/package.sh
bash scripts/build.sh
# The libFuzzer targets (clang, build-fuzz/); ctest runs each for a bounded time.
bash scripts/fuzz.sh build
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 300 </dev/null
