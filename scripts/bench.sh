#!/usr/bin/env bash
# Runs IceDB's benchmarks (criterion, release profile) after building the
# plugins they use. Arguments go to `cargo bench` (e.g. `plugin_stages`).
# `scripts/bench.sh peers` instead runs IceDB, DuckLake and Delta side by
# side on one moto server (scripts/peers.py), installing their Python
# packages into the test venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup.sh
. scripts/setup.sh
export ICEDB_PLUGIN_DIR="${ICEDB_PLUGIN_DIR:-$ICEDB_CACHE/plugins}"
scripts/build-plugins.sh
# shellcheck source=moto.sh
. scripts/moto.sh
export ICEDB_BENCH_S3_ENDPOINT="$MOTO_ENDPOINT"
if [ "${1:-}" = peers ]; then
  if [ ! -f "$ICEDB_PYTHON_VENV/.icedb-peers-1" ]; then
    echo "[bench] installing DuckDB 1.4.4, duckdb-ext-ducklake, deltalake, pyarrow into $ICEDB_PYTHON_VENV" >&2
    "$ICEDB_PYTHON_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "duckdb==1.4.4" "duckdb-ext-ducklake==1.4.4.*" "duckdb-ext-httpfs==1.4.4.*" \
      "deltalake==1.6.6" "pyarrow==26.*" >&2
    touch "$ICEDB_PYTHON_VENV/.icedb-peers-1"
  fi
  ext="$ICEDB_DUCKDB_EXTENSION_DIR/v1.4.4/linux_amd64"
  if [ ! -f "$ext/ducklake.duckdb_extension" ]; then
    src=$(find "$ICEDB_PYTHON_VENV" -path "*v1.4.4/linux_amd64/ducklake.duckdb_extension" | head -n 1)
    mkdir -p "$ext" && cp "$src" "$ext/"
  fi
  cargo build --release --workspace --bins
  AWS_ENDPOINT_URL="$MOTO_ENDPOINT" ICEDB_BIN="$CARGO_TARGET_DIR/release/icedb-host" \
    "$ICEDB_PYTHON_VENV/bin/python" scripts/peers.py
  exit 0
fi
# Benchmarks that drive the real binaries need them built first.
cargo build --release --workspace --bins
if [ $# -gt 0 ]; then cargo bench --workspace --bench "$@"; else cargo bench --workspace; fi
