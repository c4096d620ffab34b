#!/usr/bin/env bash
# Runs IceDB's main job, `icedb-host run`, on the embedded default (one table
# `events` under ./icedb-data, built-in plugins), after installing what it
# needs (scripts/setup.sh). Extra arguments go to `icedb-host run`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=setup.sh
. "$repo/scripts/setup.sh"
# The workspace's binaries in one go (the same build `scripts/bench.sh` uses).
cargo build --release --manifest-path "$repo/Cargo.toml" --workspace --bins
exec "$CARGO_TARGET_DIR/release/icedb-host" run "$@"
