# Thin wrappers over scripts/ (which need nothing but the Rust toolchain).
# `just` itself is optional: `pip install rust-just` or `cargo install just`.

# Build every plugin in plugins/ into a WebAssembly component.
plugins:
    scripts/build-plugins.sh

# The whole test suite (installs what it needs, starts moto on a free port).
test *ARGS:
    scripts/test.sh {{ARGS}}

# icedb-host run on the embedded default (./icedb-data, 127.0.0.1:8080).
run *ARGS:
    scripts/run.sh {{ARGS}}

# The terminal dashboard.
tui *ARGS:
    . scripts/setup.sh && cargo run --release -p icedb-tui -- {{ARGS}}

# Criterion benchmarks, e.g. `just bench plugin_stages`.
bench *ARGS:
    scripts/bench.sh {{ARGS}}

fmt:
    cargo fmt --all && cd plugins && cargo fmt --all

lint:
    . scripts/setup.sh && cargo clippy --release --workspace --all-targets -- -D warnings
    . scripts/setup.sh && cd plugins && cargo clippy --release --target wasm32-wasip2 -- -D warnings
