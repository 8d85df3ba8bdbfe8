#!/usr/bin/env bash
# Fails when a C++ file differs from what clang-format (the root .clang-format) makes of it.
# With --fix, reformats them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find core plugins tests bench examples -name '*.cpp' -o -name '*.h' | sort)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run --Werror "${files[@]}"
fi
