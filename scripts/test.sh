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

# moto: a free port chosen by the kernel, the server killed on any exit.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_log="$ICEDB_CACHE/moto-$port.log"
moto_server -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  kill -0 "$moto_pid" 2>/dev/null || { cat "$moto_log" >&2; echo "moto_server failed to start" >&2; exit 1; }
  sleep 0.1
done
export ICEDB_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=icedb-test AWS_SECRET_ACCESS_KEY=icedb-test-secret AWS_REGION=us-east-1
echo "[test] moto S3 server on $ICEDB_TEST_S3_ENDPOINT" >&2

# One build in one profile serves the binaries and the tests.
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast "$@"
