#!/usr/bin/env bash
# IceDB's whole test suite, from a fresh machine with only the Rust toolchain:
# installs what the tests need (scripts/setup.sh), builds the plugins from
# source, starts an S3-compatible server (moto) on a free 127.0.0.1 port,
# builds everything once in the release profile and runs every test.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p icedb-plugin`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup.sh
. scripts/setup.sh

export ICEDB_PLUGIN_DIR="${ICEDB_PLUGIN_DIR:-$ICEDB_CACHE/plugins}"
scripts/build-plugins.sh

# shellcheck source=moto.sh
. scripts/moto.sh
export ICEDB_TEST_S3_ENDPOINT="$MOTO_ENDPOINT"

# One build in one profile serves the binaries and the tests.
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast "$@"
