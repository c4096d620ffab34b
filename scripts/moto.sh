# Sourced by test.sh and bench.sh (after setup.sh): starts a moto S3 server
# on a free 127.0.0.1 port, stops it when the calling script exits, and
# exports its address as MOTO_ENDPOINT plus credentials moto accepts.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_log="$ICEDB_CACHE/moto-$port.log"
moto_server -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$moto_log"' EXIT
for _ in $(seq 1 150); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  kill -0 "$moto_pid" 2>/dev/null || { cat "$moto_log" >&2; echo "moto_server failed to start" >&2; exit 1; }
  sleep 0.1
done
export MOTO_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=icedb-test AWS_SECRET_ACCESS_KEY=icedb-test-secret AWS_REGION=us-east-1
echo "[moto] S3 server on $MOTO_ENDPOINT" >&2
