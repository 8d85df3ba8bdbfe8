#!/usr/bin/env bash
# The libFuzzer targets (fuzz/): built with clang in build-fuzz, each run for a bounded time on
# a copy of its corpus (fuzz/corpus/<name>, kept in the repo), under bwrap with / read-only and a
# private /tmp. A crash leaves the input in build-fuzz/crash-<name>-*.
#
#   scripts/fuzz.sh build
#   scripts/fuzz.sh run <name> [seconds]     (name: config, router, request, archive, vault; default 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
case "${1:-}" in
  build)
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >/dev/null
    cmake --build "$BUILD"
    ;;
  run)
    name=$2
    seconds=${3:-30}
    bin="$ROOT/$BUILD/fuzz_$name"
    [[ -x $bin ]] || { echo "fuzz: $bin is not built (scripts/fuzz.sh build)" >&2; exit 1; }
    [[ -d fuzz/corpus/$name ]] || { echo "fuzz: no corpus fuzz/corpus/$name" >&2; exit 1; }
    mkdir -p "$ROOT/$BUILD/runs"
    work=$(mktemp -d -p "$ROOT/$BUILD/runs")  # not under /tmp, which the target watches
    trap 'rm -rf "$work"' EXIT
    cp -r "fuzz/corpus/$name" "$work/corpus"
    mkdir -p "$ROOT/$BUILD/artifacts"
    # -rss_limit_mb: a leak or a blow-up on one input fails the run, as a crash does.
    # The binary and the directories it writes are bound back in: the repo may itself be under /tmp.
    bwrap --ro-bind / / --tmpfs /tmp --dev /dev --proc /proc --ro-bind "$bin" "$bin" --bind "$work" "$work" \
      --bind "$ROOT/$BUILD/artifacts" "$ROOT/$BUILD/artifacts" --unshare-all --die-with-parent \
      "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$ROOT/$BUILD/artifacts/crash-$name-" "$work/corpus" </dev/null
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | run <name> [seconds]" >&2
    exit 2
    ;;
esac
