#!/usr/bin/env bash
# Installs everything IceDB's build, run and tests need beyond the Rust toolchain,
# idempotently, under one cache directory outside the checkout:
#   $ICEDB_CACHE/target        shared cargo target directory (CARGO_TARGET_DIR)
#   $ICEDB_CACHE/venv          Python: moto[server], componentize-py, DuckDB's httpfs and delta
#                              extensions, deltalake + pyarrow (the Delta export's reader tests)
#   $ICEDB_CACHE/node          componentize-js and the prebuilt libduckdb (npm)
#   $ICEDB_CACHE/duckdb        libduckdb.so 1.4.4 + extension directory
# Source it (`. scripts/setup.sh`) to get the environment exported; run it to only install.
# Sourcing leaves the caller's shell options alone: the installs run in a subshell.

ICEDB_CACHE="${ICEDB_CACHE:-$HOME/.cache/icedb}"
DUCKDB_DIR="$ICEDB_CACHE/duckdb"

_icedb_install() (
set -euo pipefail

DUCKDB_VERSION=1.4.4
DUCKDB_NPM_BINDINGS="@duckdb/node-bindings-linux-x64@1.4.4-r.4"
HTTPFS_PYPI="duckdb-ext-httpfs==1.4.4.*"
COMPONENTIZE_PY="componentize-py==0.25.1"
COMPONENTIZE_JS="@bytecodealliance/componentize-js@0.23.0"
MOTO="moto[server]==5.2.5"
DELTA_READERS=("duckdb-ext-delta==1.4.4.*" "deltalake==1.6.6" "pyarrow==26.*")

log() { printf '[setup] %s\n' "$*" >&2; }
mkdir -p "$ICEDB_CACHE"

# --- Rust target for WASM guests -------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  log "adding rust target wasm32-wasip2"
  rustup target add wasm32-wasip2 >&2
fi

# --- tmux: the TUI's end-to-end test drives the real binary in a terminal ----------
if ! command -v tmux >/dev/null 2>&1; then
  log "installing tmux (Debian package)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq tmux >&2 || { apt-get update -qq >&2 && apt-get install -y -qq tmux >&2; }
  else
    sudo apt-get install -y -qq tmux >&2 || { sudo apt-get update -qq >&2 && sudo apt-get install -y -qq tmux >&2; }
  fi
fi

# --- Python tools ------------------------------------------------------------------
VENV="$ICEDB_CACHE/venv"
if [ ! -f "$VENV/.icedb-ready-1" ]; then
  log "creating python venv in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "$MOTO" "$COMPONENTIZE_PY" "$HTTPFS_PYPI" >&2
  touch "$VENV/.icedb-ready-1"
fi
if [ ! -f "$VENV/.icedb-ready-2" ]; then
  log "installing the Delta readers (DuckDB's delta extension, deltalake) in $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${DELTA_READERS[@]}" >&2
  touch "$VENV/.icedb-ready-2"
fi

# --- npm tools: componentize-js and the prebuilt libduckdb ---------------------------
NODE_DIR="$ICEDB_CACHE/node"
if [ ! -f "$NODE_DIR/.icedb-ready-1" ]; then
  log "installing npm packages in $NODE_DIR"
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && { [ -f package.json ] || echo '{"private":true}' > package.json; } \
    && npm install --no-audit --no-fund --silent --force "$COMPONENTIZE_JS" "$DUCKDB_NPM_BINDINGS" >&2)
  touch "$NODE_DIR/.icedb-ready-1"
fi

# --- DuckDB: shared library + pre-installed httpfs extension --------------------------
if [ ! -f "$DUCKDB_DIR/lib/libduckdb.so" ]; then
  so=$(find "$NODE_DIR/node_modules/@duckdb" -name 'libduckdb.so' | head -n 1)
  [ -n "$so" ] || { log "libduckdb.so not found in the npm bindings package"; exit 1; }
  mkdir -p "$DUCKDB_DIR/lib"
  cp "$so" "$DUCKDB_DIR/lib/libduckdb.so"
  log "libduckdb.so $DUCKDB_VERSION installed in $DUCKDB_DIR/lib"
fi
EXT_DIR="$DUCKDB_DIR/extensions"
if [ ! -f "$EXT_DIR/v$DUCKDB_VERSION/linux_amd64/httpfs.duckdb_extension" ]; then
  src=$(find "$VENV" -path "*v$DUCKDB_VERSION/linux_amd64/httpfs.duckdb_extension" | head -n 1)
  [ -n "$src" ] || { log "httpfs extension not found in $HTTPFS_PYPI"; exit 1; }
  mkdir -p "$EXT_DIR/v$DUCKDB_VERSION/linux_amd64"
  cp "$src" "$EXT_DIR/v$DUCKDB_VERSION/linux_amd64/"
  log "httpfs extension installed in $EXT_DIR"
fi
if [ ! -f "$EXT_DIR/v$DUCKDB_VERSION/linux_amd64/delta.duckdb_extension" ]; then
  src=$(find "$VENV" -path "*v$DUCKDB_VERSION/linux_amd64/delta.duckdb_extension" | head -n 1)
  [ -n "$src" ] || { log "delta extension not found in duckdb-ext-delta"; exit 1; }
  cp "$src" "$EXT_DIR/v$DUCKDB_VERSION/linux_amd64/"
  log "delta extension installed in $EXT_DIR"
fi
)

if ! _icedb_install; then
  echo "[setup] failed; see the messages above" >&2
  return 1 2>/dev/null || exit 1
fi
unset -f _icedb_install

export ICEDB_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ICEDB_CACHE/target}"
export DUCKDB_LIB_DIR="$DUCKDB_DIR/lib"
export ICEDB_DUCKDB_EXTENSION_DIR="$DUCKDB_DIR/extensions"
export ICEDB_PYTHON_VENV="$ICEDB_CACHE/venv"
case ":$PATH:" in
  *":$ICEDB_CACHE/venv/bin:"*) ;;
  *) export PATH="$ICEDB_CACHE/venv/bin:$ICEDB_CACHE/node/node_modules/.bin:$PATH" ;;
esac
# The prebuilt libduckdb is found at run time through an rpath baked into
# host-target binaries (tests and benches included), so nothing needs
# LD_LIBRARY_PATH. Target-specific so the wasm32 plugin builds are untouched.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath,$DUCKDB_LIB_DIR"
