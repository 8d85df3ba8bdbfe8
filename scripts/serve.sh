#!/usr/bin/env bash
# Installs what is missing, builds, and starts `paddock serve` on :3000 with the embedded
# config/paddock.toml. Arguments are passed to `paddock serve` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh server
exec build/bin/paddock serve "$@"
