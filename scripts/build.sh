#!/usr/bin/env bash
# Configures (Ninja, ccache, warnings as errors) and builds into ./build. Extra arguments are
# ninja targets (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
ninja -C build "$@"
