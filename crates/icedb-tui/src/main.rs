//! `icedb-tui`: the terminal dashboard for IceDB tables and hosts.
//!
//! Not built yet (see the "icedb-tui" issue): this binary only parses its
//! command line and says so.

use clap::Parser;

/// IceDB's terminal dashboard: partitions, merges, queries, commits, plugins.
#[derive(Parser)]
#[command(name = "icedb-tui", version, about)]
struct Cli {
    /// Open a table directly (serverless), e.g. ./icedb-data/events or s3://bucket/prefix.
    #[arg(long, conflicts_with = "host")]
    table: Option<String>,
    /// Watch a running icedb-host, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    host: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("icedb-tui is not implemented yet; use `icedb-host` for now")
}
