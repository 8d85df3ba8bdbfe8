#!/usr/bin/env bash
# Configures (Ninja, ccache, warnings as errors) and builds into ./build. Extra arguments are
# ninja targets (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: paths under the checkout are hashed relative to it, so a fresh clone elsewhere (CI)
# reuses what an earlier build of the same sources compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
ninja -C build "$@"
