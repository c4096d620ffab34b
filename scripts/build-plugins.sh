#!/usr/bin/env bash
# Builds every plugin in plugins/ from source into WebAssembly components:
#   $ICEDB_PLUGIN_DIR (default $ICEDB_CACHE/plugins)/<plugin-name>.wasm
# Rust plugins through cargo (wasm32-wasip2), the Python one through
# componentize-py, the JavaScript one through componentize-js. Python and JS
# components are rebuilt only when their sources or the WIT changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=setup.sh
. scripts/setup.sh

OUT="${ICEDB_PLUGIN_DIR:-$ICEDB_CACHE/plugins}"
mkdir -p "$OUT"
log() { printf '[plugins] %s\n' "$*" >&2; }

# Up to date when the output exists and no source is newer than it.
up_to_date() {
  local out="$1"; shift
  [ -f "$out" ] && [ -z "$(find "$@" -newer "$out" -type f -print -quit)" ]
}

log "rust plugins (cargo, wasm32-wasip2)"
cargo build --quiet --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
for crate in partition_by_day flatten_json hostile; do
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/$crate.wasm" "$OUT/${crate//_/-}.wasm"
done

if ! up_to_date "$OUT/enrich-py.wasm" plugins/enrich-py wit; then
  log "enrich-py (componentize-py)"
  componentize-py -d wit -w format-row-plugin componentize --stub-wasi \
    -p plugins/enrich-py app -o "$OUT/enrich-py.wasm" >&2
fi

if ! up_to_date "$OUT/partition-by-hour-js.wasm" plugins/partition-by-hour-js wit; then
  log "partition-by-hour-js (componentize-js)"
  componentize-js plugins/partition-by-hour-js/plugin.js --wit wit --world-name partition-plugin \
    -d http fetch-event random stdio clocks -o "$OUT/partition-by-hour-js.wasm" >&2
fi

log "components in $OUT: $(cd "$OUT" && ls -- *.wasm | tr '\n' ' ')"
