#!/usr/bin/env bash
# Counts the S3 requests one vacuum sends: starts moto, inserts 20 000
# standard events as 20 inserts written as files (600 files over 30 daily
# partitions; inlining off, or they would stay in the commits), merges
# them into 30, then vacuums the 600 merged-away files and prints the time
# and the DELETE / bulk-delete (POST ?delete) requests moto saw.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup.sh
. scripts/setup.sh
# shellcheck source=moto.sh
. scripts/moto.sh
export AWS_ENDPOINT_URL="$MOTO_ENDPOINT"
cargo build --release -p icedb-host >&2
icedb="$CARGO_TARGET_DIR/release/icedb-host"
python3 -c "import boto3; boto3.client('s3', endpoint_url='$MOTO_ENDPOINT').create_bucket(Bucket='vacuum')"
work=$(mktemp -d)
trap 'rm -rf "$work"; kill "$moto_pid" 2>/dev/null || true' EXIT
cd "$work"
table=(--table s3://vacuum/lake/events)
"$icedb" gen-events --rows 20000 | "$icedb" insert - --batch-rows 1000 --inline-max-rows 0 "${table[@]}" >/dev/null
"$icedb" merge "${table[@]}" | tail -1
before=$(wc -l <"$moto_log")
start=$(date +%s%N)
"$icedb" vacuum "${table[@]}" --grace 0s --force 2>/dev/null
end=$(date +%s%N)
tail -n +"$((before + 1))" "$moto_log" >requests.log
echo "vacuum: $(((end - start) / 1000000)) ms (whole process)"
echo "one-key DELETE requests: $(grep -c '"DELETE ' requests.log || true)"
echo "bulk delete requests: $(grep -c '"POST [^ ]*?delete' requests.log || true)"
