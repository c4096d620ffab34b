//! Where the dashboard's data comes from: a table opened directly
//! (serverless: the meta store is synced read-only and queries run here in
//! DuckDB) or a running `icedb-host` (its HTTP API).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use icedb::{MergePolicy, PartitionFilter, QueryOptions, Table};
use serde_json::Value;

use crate::model::{
    ActivityRow, Dashboard, FileRow, Overview, PartitionRow, PluginRow, QueryOutcome,
};

/// How many commits and activity entries a refresh brings.
const RECENT: usize = 100;

pub enum Source {
    Table(TableSource),
    Host(HostSource),
}

pub struct TableSource {
    table: Arc<Table>,
    /// What this dashboard ran itself (there is no host to ask).
    activity: Mutex<Vec<ActivityRow>>,
}

pub struct HostSource {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    table: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Source {
    pub fn table(table: Table) -> Source {
        Source::Table(TableSource {
            table: Arc::new(table),
            activity: Mutex::new(Vec::new()),
        })
    }

    /// Connects to a host and picks `table` (default: its only table, or `events`).
    pub async fn host(url: &str, token: Option<String>, table: Option<String>) -> Result<Source> {
        let mut host = HostSource {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            base: url.trim_end_matches('/').to_owned(),
            token,
            table: String::new(),
        };
        let tables = host.get("/v1/tables").await?;
        let names: Vec<String> = tables["tables"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        host.table = match table {
            Some(name) if names.contains(&name) => name,
            Some(name) => bail!(
                "{url} serves no table `{name}` (it has: {})",
                names.join(", ")
            ),
            None if names.len() == 1 => names[0].clone(),
            None if names.iter().any(|n| n == "events") => "events".to_owned(),
            None => bail!(
                "{url} serves several tables ({}); choose one with --table-name",
                names.join(", ")
            ),
        };
        Ok(Source::Host(host))
    }

    /// What the header says the dashboard is looking at.
    pub fn label(&self) -> String {
        match self {
            Source::Table(s) => format!("table {}", s.table.config().root),
            Source::Host(h) => format!("host {} · table {}", h.base, h.table),
        }
    }

    pub async fn dashboard(&self) -> Result<Dashboard> {
        match self {
            Source::Table(s) => s.dashboard().await,
            Source::Host(h) => h.dashboard().await,
        }
    }

    pub async fn files(&self, partition: &str) -> Result<Vec<FileRow>> {
        match self {
            Source::Table(s) => {
                s.table.sync().await?;
                Ok(s.table
                    .snapshot()?
                    .files(&PartitionFilter::Prefix(partition.to_owned()))?
                    .into_iter()
                    .filter(|f| f.partition == partition)
                    .map(|f| FileRow {
                        path: f.path,
                        bytes: f.bytes,
                        rows: f.rows,
                        created_ms: f.created_ms,
                    })
                    .collect())
            }
            Source::Host(h) => {
                let answer = h
                    .get(&format!(
                        "/v1/tables/{}/files?partition={}",
                        h.table,
                        urlencode(partition)
                    ))
                    .await?;
                Ok(serde_json::from_value(answer["files"].clone())?)
            }
        }
    }

    pub async fn query(&self, sql: &str) -> Result<QueryOutcome> {
        match self {
            Source::Table(s) => s.query(sql).await,
            Source::Host(h) => h.query(sql).await,
        }
    }

    /// One merge round of the `hot` or `cold` policy; returns a summary.
    pub async fn merge(&self, policy: &str) -> Result<String> {
        let detail = match self {
            Source::Table(s) => s.merge(policy).await?,
            Source::Host(h) => {
                h.send(h.client.post(format!(
                    "{}/v1/tables/{}/merge?policy={policy}",
                    h.base, h.table
                )))
                .await?
            }
        };
        Ok(format!(
            "{policy} merge: {} files into {} in {} jobs, {} conflicts",
            detail["files_in"], detail["files_out"], detail["jobs"], detail["conflicts"]
        ))
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'=' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl TableSource {
    async fn dashboard(&self) -> Result<Dashboard> {
        self.table.sync().await?;
        let snapshot = self.table.snapshot()?;
        let (hot, cold) = (MergePolicy::hot(), MergePolicy::cold());
        let mut backlogs = self.table.merge_backlog(&[&hot, &cold])?.into_iter();
        let (hot, cold) = (
            backlogs.next().unwrap_or_default(),
            backlogs.next().unwrap_or_default(),
        );
        let stats = snapshot.partitions(&PartitionFilter::All)?;
        let partitions: Vec<PartitionRow> = stats
            .iter()
            .cloned()
            .map(|p| PartitionRow {
                merge_backlog: cold.get(&p.partition).copied().unwrap_or(0),
                partition: p.partition,
                files: p.files,
                rows: p.rows,
                bytes: p.bytes,
                newest_write_ms: p.newest_write_ms,
            })
            .collect();
        let totals = icedb::Totals::of(&stats);
        let overview = Overview {
            table: self.table.name().to_owned(),
            root: self.table.config().root.clone(),
            version: snapshot.version(),
            files: totals.files,
            rows: totals.rows,
            bytes: totals.bytes,
            partitions: partitions.len(),
            tombstones: snapshot.tombstones()?.len(),
            ..Overview::default()
        }
        .with_definition(&serde_json::to_value(self.table.definition())?);
        let plugins = self
            .table
            .plugins()
            .into_iter()
            .map(|p| PluginRow {
                role: p.role.to_owned(),
                name: p.name,
                calls: p.stats.calls,
                rows: p.stats.rows,
                errors: p.stats.errors,
                traps: p.stats.traps,
                busy_ms: p.stats.busy.as_secs_f64() * 1e3,
            })
            .collect();
        let mut activity = self.activity.lock().expect("activity lock").clone();
        activity.reverse();
        Ok(Dashboard {
            overview,
            partitions,
            commits: snapshot.history(RECENT)?,
            activity,
            backlog: vec![
                ("hot".to_owned(), hot.values().sum()),
                ("cold".to_owned(), cold.values().sum()),
            ],
            plugins,
        })
    }

    fn record(&self, row: ActivityRow) {
        let mut activity = self.activity.lock().expect("activity lock");
        activity.push(row);
        let excess = activity.len().saturating_sub(RECENT);
        activity.drain(..excess);
    }

    async fn query(&self, sql: &str) -> Result<QueryOutcome> {
        let started_ms = now_ms();
        let result = self.table.query(sql, &QueryOptions::default()).await;
        let (status, error, detail) = match &result {
            Ok(r) => ("ok", None, serde_json::json!({"rows": r.row_count()})),
            Err(e) => ("error", Some(e.to_string()), Value::Null),
        };
        self.record(ActivityRow {
            kind: "query".into(),
            table: self.table.name().to_owned(),
            label: sql.to_owned(),
            started_ms,
            duration_ms: Some((now_ms() - started_ms) as f64),
            status: status.into(),
            error,
            detail,
        });
        let result = result?;
        let columns = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let rows = icedb::output::text_cells(&result.batches, "NULL")?;
        Ok(QueryOutcome {
            sql: sql.to_owned(),
            columns,
            rows,
            elapsed_ms: result.elapsed.as_secs_f64() * 1e3,
            version: result.version,
            files_scanned: result.files_scanned as u64,
            files_pruned: result.files_pruned as u64,
        })
    }

    async fn merge(&self, policy: &str) -> Result<Value> {
        let policy = match policy {
            "hot" => MergePolicy::hot(),
            "cold" => MergePolicy::cold(),
            other => bail!("unknown merge policy {other}"),
        };
        let started = Instant::now();
        let started_ms = now_ms();
        let result = self.table.merge_once(&policy).await;
        let (status, error, detail) = match &result {
            Ok(report) => (
                if report.conflicts > 0 {
                    "conflict"
                } else {
                    "ok"
                },
                None,
                {
                    let mut detail = report.to_json();
                    detail["policy"] = policy.name.clone().into();
                    detail
                },
            ),
            Err(e) => ("error", Some(e.to_string()), Value::Null),
        };
        self.record(ActivityRow {
            kind: "merge".into(),
            table: self.table.name().to_owned(),
            label: format!("{} policy", policy.name),
            started_ms,
            duration_ms: Some(started.elapsed().as_secs_f64() * 1e3),
            status: status.into(),
            error,
            detail: detail.clone(),
        });
        result?;
        Ok(detail)
    }
}

impl HostSource {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching {}", self.base))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("reading an answer of {}", self.base))?;
        if !status.is_success() {
            bail!(
                "{} answered {status}: {}",
                self.base,
                body["error"].as_str().unwrap_or("(no message)")
            );
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn dashboard(&self) -> Result<Dashboard> {
        let t = &self.table;
        let info = self.get(&format!("/v1/tables/{t}")).await?;
        let partitions: Vec<PartitionRow> = serde_json::from_value(
            self.get(&format!("/v1/tables/{t}/partitions")).await?["partitions"].take(),
        )?;
        let commits = serde_json::from_value(
            self.get(&format!("/v1/tables/{t}/commits?limit={RECENT}"))
                .await?["commits"]
                .take(),
        )?;
        let mut activity_answer = self.get(&format!("/v1/activity?limit={RECENT}")).await?;
        let mut activity: Vec<ActivityRow> =
            serde_json::from_value(activity_answer["running"].take())?;
        activity.extend(serde_json::from_value::<Vec<ActivityRow>>(
            activity_answer["recent"].take(),
        )?);
        activity.retain(|a| a.table == *t);
        let number = |key: &str| info[key].as_u64().unwrap_or(0);
        let overview = Overview {
            table: t.clone(),
            root: info["root"].as_str().unwrap_or_default().to_owned(),
            version: number("version"),
            files: number("files"),
            rows: number("rows"),
            bytes: number("bytes"),
            partitions: number("partitions") as usize,
            tombstones: number("tombstones") as usize,
            ..Overview::default()
        }
        .with_definition(&info["definition"]);
        let backlog = info["merge_backlog"]
            .as_object()
            .map(|b| {
                b.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0) as usize))
                    .collect()
            })
            .unwrap_or_default();
        let plugins = serde_json::from_value(info["plugins"].clone()).unwrap_or_default();
        Ok(Dashboard {
            overview,
            partitions,
            commits,
            activity,
            backlog,
            plugins,
        })
    }

    async fn query(&self, sql: &str) -> Result<QueryOutcome> {
        let answer = self
            .send(
                self.client
                    .post(format!("{}/v1/query", self.base))
                    .json(&serde_json::json!({ "sql": sql, "table": self.table })),
            )
            .await?;
        let columns: Vec<String> = answer["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let rows = answer["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        columns
                            .iter()
                            .map(|c| match &row[c] {
                                Value::Null => "NULL".to_owned(),
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryOutcome {
            sql: sql.to_owned(),
            columns,
            rows,
            elapsed_ms: answer["elapsed_ms"].as_f64().unwrap_or(0.0),
            version: answer["version"].as_u64().unwrap_or(0),
            files_scanned: answer["files_scanned"].as_u64().unwrap_or(0),
            files_pruned: answer["files_pruned"].as_u64().unwrap_or(0),
        })
    }
}
