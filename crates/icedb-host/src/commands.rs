//! One-shot commands on a table: insert, query, merge, vacuum, status,
//! check-store.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use icedb::{MergePolicy, PartitionFilter, QueryOptions, VacuumOptions};

use crate::table_args::TableArgs;

#[derive(clap::Args)]
pub struct InsertArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// NDJSON to insert (one JSON object per line); `-` reads standard input.
    pub input: PathBuf,
    /// Commit every this many rows (each commit is all-or-nothing).
    #[arg(long, default_value_t = 100_000)]
    pub batch_rows: usize,
}

pub async fn insert(args: InsertArgs) -> Result<()> {
    let table = args.table.open().await?;
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.input)
                .with_context(|| format!("opening {}", args.input.display()))?,
        ))
    };
    let started = Instant::now();
    let (mut rows, mut commits, mut batch, mut first_line) = (0u64, 0u64, Vec::new(), 1usize);
    let mut lines = reader.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let line = line.with_context(|| format!("reading line {}", index + 1))?;
        if !line.trim().is_empty() {
            batch.push(line);
        }
        if batch.len() >= args.batch_rows.max(1) || lines.peek().is_none() {
            if batch.is_empty() {
                break;
            }
            let body = batch.join("\n");
            let receipt = table.insert_ndjson(body.as_bytes()).await.map_err(|e| {
                anyhow::anyhow!("{e} (in the batch starting at input line {first_line}; {rows} rows committed before it)")
            })?;
            rows += receipt.rows;
            commits += 1;
            batch.clear();
            first_line = index + 2;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!(
                    "\r{rows} rows in {commits} commits, version {}",
                    receipt.version
                );
            }
        }
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    if commits == 0 {
        bail!("no rows in the input");
    }
    let took = started.elapsed();
    println!(
        "inserted {rows} rows in {commits} commits ({:.0} rows/s), table version {}",
        rows as f64 / took.as_secs_f64(),
        table.version()?
    );
    Ok(())
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// SQL; the table is a view named after it (default `events`), with its
    /// Hive partition columns (y, m, d, ...).
    pub sql: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Only read partitions at or below this path (e.g. y=2026/m=10).
    #[arg(long)]
    pub partition: Option<String>,
    /// Read the table as of this version.
    #[arg(long)]
    pub version: Option<u64>,
}

pub async fn query(args: QueryArgs) -> Result<()> {
    let table = args.table.open().await?;
    let options = QueryOptions {
        partitions: args
            .partition
            .map_or(PartitionFilter::All, PartitionFilter::Prefix),
        version: args.version,
        ..QueryOptions::default()
    };
    let result = table.query(&args.sql, &options).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Table => {
            writeln!(out, "{}", icedb::output::pretty(&result.batches)?)?;
            eprintln!(
                "{} rows in {:.2?} (version {}, {} files scanned, {} pruned)",
                result.row_count(),
                result.elapsed,
                result.version,
                result.files_scanned,
                result.files_pruned
            );
        }
        OutputFormat::Json => icedb::output::write_ndjson(&result.batches, &mut out)?,
        OutputFormat::Csv => icedb::output::write_csv(&result.batches, &mut out)?,
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// One round instead of merging to quiescence.
    #[arg(long)]
    pub once: bool,
    /// The hot policy (newest partitions first, small limits) instead of cold.
    #[arg(long)]
    pub hot: bool,
    /// Only partitions at or below this path.
    #[arg(long)]
    pub partition: Option<String>,
}

pub async fn merge(args: MergeArgs) -> Result<()> {
    let table = args.table.open().await?;
    let mut policy = if args.hot {
        MergePolicy::hot()
    } else {
        MergePolicy::cold()
    };
    policy.partition_prefix = args.partition;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = if args.once {
        table.merge_once(&policy).await?
    } else {
        let report = table
            .merge_until_quiescent_reporting(&policy, |total| {
                if terminal {
                    eprint!(
                        "\r{} files merged into {} so far ({} conflicts), {:.1?}",
                        total.files_in, total.files_out, total.conflicts, total.elapsed
                    );
                }
            })
            .await?;
        if terminal {
            eprintln!();
        }
        report
    };
    println!(
        "merged {} files into {} in {} jobs ({} MiB → {} MiB, {} rows) in {:.2?}; {} conflicts",
        report.files_in,
        report.files_out,
        report.jobs,
        report.bytes_in >> 20,
        report.bytes_out >> 20,
        report.rows,
        report.elapsed,
        report.conflicts
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// How long removed files stay readable, and how old an unreferenced
    /// file must be to be deleted as an orphan, e.g. 1h, 90m. Below the 1 h
    /// retention floor only with --force.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Allow a grace below the 1 h retention floor. DANGEROUS while anything
    /// writes to the table: a file uploaded by a commit still in flight (a
    /// slow or retrying writer, or one whose clock is behind) looks like an
    /// orphan and is deleted, and the commit that lands then references a
    /// missing file. Use only when every writer is stopped.
    #[arg(long)]
    pub force: bool,
    /// Do not look for orphans (the listing of every data object); removed
    /// files and old log entries still go.
    #[arg(long)]
    pub no_orphans: bool,
}

pub async fn vacuum(args: VacuumArgs) -> Result<()> {
    let table = args.table.open().await?;
    let report = table
        .vacuum(&VacuumOptions {
            grace: args.grace,
            force: args.force,
            orphans: !args.no_orphans,
            ..VacuumOptions::default()
        })
        .await?;
    let orphans = if report.orphans_checked {
        format!(" and {} orphans", report.orphans_deleted)
    } else {
        ", orphans not looked for".to_owned()
    };
    println!(
        "purged {} removed files{orphans} ({} MiB freed); expired {} log entries, {} checkpoints and {} Delta log entries; {:.2?}",
        report.purged,
        report.bytes_freed >> 20,
        report.log_entries_deleted,
        report.checkpoints_deleted,
        report.delta_log_entries_deleted,
        report.elapsed
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct ExportDeltaArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Write a Parquet checkpoint every this many Delta versions (0:
    /// never) [default: the config's `[tables.delta] checkpoint_every`,
    /// else 10].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
}

pub async fn export_delta(args: ExportDeltaArgs) -> Result<()> {
    let mut config = args.table.config()?;
    if let Some(every) = args.checkpoint_every {
        config.delta = Some(icedb::DeltaSettings {
            checkpoint_every: every,
        });
    }
    let table = args.table.open_config(config).await?;
    let report = table.export_delta().await?;
    match (report.delta_version, report.icedb_version) {
        (Some(delta), Some(icedb)) => println!(
            "exported {} commits ({} checkpoints; {} already exported by another exporter); Delta version {delta} = IceDB version {icedb}; {:.2?}",
            report.exported, report.checkpoints, report.raced, report.elapsed
        ),
        _ => println!("nothing to export: the table has no data yet"),
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// How many partitions to list (newest first).
    #[arg(long, default_value_t = 10)]
    pub partitions: usize,
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let table = args.table.open().await?;
    let snapshot = table.snapshot()?;
    let partitions = snapshot.partitions(&PartitionFilter::All)?;
    let icedb::Totals { files, rows, bytes } = icedb::Totals::of(&partitions);
    println!("table      {} at {}", table.name(), table.config().root);
    println!("version    {}", snapshot.version());
    let inline = snapshot.inline_totals()?;
    println!(
        "totals     {rows} rows, {} files, {} KiB, {} partitions",
        files - inline.files,
        bytes >> 10,
        partitions.len()
    );
    println!(
        "inline     {} rows in {} parts, {} KiB (in the log until the next merge)",
        inline.rows,
        inline.files,
        inline.bytes >> 10
    );
    println!("tombstones {}", snapshot.tombstones()?.len());
    let schema: Vec<String> = snapshot
        .schema()?
        .iter()
        .map(|c| format!("{} {}", c.name, c.column_type))
        .collect();
    println!("schema     {}", schema.join(", "));
    let definition = table.definition();
    println!("sort order {}", definition.sort_order.join(", "));
    println!(
        "definition {}",
        serde_json::to_string(&serde_json::json!({
            "format": definition.format,
            "partitioning": definition.partitioning,
            "parquet": definition.parquet,
        }))?
    );
    for p in partitions.iter().rev().take(args.partitions) {
        println!(
            "  {:<32} {:>6} files {:>10} rows {:>10} KiB",
            p.partition,
            p.files,
            p.rows,
            p.bytes >> 10
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AlterArgs {
    #[command(flatten)]
    pub table: TableArgs,
}

pub async fn alter(args: AlterArgs) -> Result<()> {
    let config = args.table.config()?;
    let plugins = icedb::PluginHost::new(Default::default())?;
    let (report, _) = icedb::Table::alter(config, &plugins).await?;
    match report.version {
        None => println!("unchanged: the table already has this definition"),
        Some(version) => {
            println!("altered at version {version}");
            println!("before     {}", serde_json::to_string(&report.before)?);
            println!("after      {}", serde_json::to_string(&report.after)?);
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CheckStoreArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// How many conditional creates race for one key.
    #[arg(long, default_value_t = 8)]
    pub racers: usize,
}

pub async fn check_store(args: CheckStoreArgs) -> Result<()> {
    let config = args.table.config()?;
    let race = icedb::race_conditional_creates(&config, args.racers).await?;
    if race.winners == 1 && race.content_matches_winner {
        println!(
            "ok: {} racing conditional creates, exactly one won",
            race.racers
        );
        Ok(())
    } else {
        bail!(
            "unsafe store: {} of {} racing conditional creates won (exactly one must); IceDB refuses to write here",
            race.winners,
            race.racers
        )
    }
}
