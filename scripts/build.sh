#!/usr/bin/env bash
# Configures (Ninja, ccache, warnings as errors) and builds. Extra arguments are ninja targets
# (default: everything). BUILD_DIR (default ./build) and BUILD_TYPE (default RelWithDebInfo)
# pick another tree, e.g. BUILD_DIR=build-release BUILD_TYPE=Release; CMAKE_ARGS adds to the
# configure step (e.g. -DCMAKE_CXX_COMPILER=clang++-14).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
type=${BUILD_TYPE:-RelWithDebInfo}
# ccache: paths under the checkout are hashed relative to it, so a fresh clone elsewhere (CI)
# reuses what an earlier build of the same sources compiled.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DPADDOCK_WERROR=ON ${CMAKE_ARGS:-}
fi
ninja -C "$dir" "$@"
