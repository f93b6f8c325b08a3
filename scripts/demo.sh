#!/usr/bin/env bash
# The main job on the bundled demo data. Until the render server lands (the
# render-service issue), this shows the tile math the server is built on: the
# tiles of a Helsinki screen in the order the scheduler will render them, and
# the tiles a bbox covers, as `tile-client tiles` prints them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --quiet -p tile-math --example viewport_plan -p tile-client
echo "== the scheduler's view of one Helsinki screen at z12"
cargo run --quiet -p tile-math --example viewport_plan -- 24.90,60.14,25.02,60.20 12
echo
echo "== tile-client tiles --bbox 24.90,60.14,25.02,60.20 --zoom 10-12"
cargo run --quiet -p tile-client -- tiles --bbox 24.90,60.14,25.02,60.20 --zoom 10-12
