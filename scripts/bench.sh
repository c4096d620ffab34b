#!/usr/bin/env bash
# Runs IceDB's benchmarks (criterion, release profile) after building the
# plugins they use. Arguments go to `cargo bench` (e.g. `plugin_stages`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup.sh
. scripts/setup.sh
export ICEDB_PLUGIN_DIR="${ICEDB_PLUGIN_DIR:-$ICEDB_CACHE/plugins}"
scripts/build-plugins.sh
# shellcheck source=moto.sh
. scripts/moto.sh
export ICEDB_BENCH_S3_ENDPOINT="$MOTO_ENDPOINT"
# Benchmarks that drive the real binaries need them built first.
cargo build --release --workspace --bins
if [ $# -gt 0 ]; then cargo bench --workspace --bench "$@"; else cargo bench --workspace; fi
