#!/usr/bin/env bash
# A third party's path, end to end: install Paddock (`cmake --install`), build the example
# harness under examples/ on its own against the installed SDK (`find_package(paddock)`), and run
# its tests: the installed Harness conformance suite against the harness, loaded by its `path`.
#   out_of_tree_harness.sh <paddock build dir> <source dir>
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # sandboxes (uid 65534) reach paddock-runtime under the prefix
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# Only what find_package(paddock) gives: the example is configured with nothing of the tree.
cmake -S "$src/examples/harness-python" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build"
test -f "$work/build/paddock-harness-python.so"
ctest --test-dir "$work/build" --output-on-failure
# The installed server loads it by config, too: `paddock check-config` with its [[harness]].
cat >"$work/paddock.toml" <<TOML
[secrets]
type = "env"
[store]
type = "sqlite"
[sandbox]
type = "process"
[[harness]]
type = "python"
path = "build/paddock-harness-python.so"
[harness.config]
python = "/usr/bin/python3"
TOML
"$work/prefix/bin/paddock" check-config --config "$work/paddock.toml"
