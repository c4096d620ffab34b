//! Where the dashboard's data comes from: a table opened directly
//! (serverless: the meta store is synced read-only and queries run here in
//! DuckDB) or a running `icedb-host` (its HTTP API).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use icedb::api::{
    ActivityList, CommitList, FileList, MergeAnswer, PartitionList, QueryAnswer, QueryRequest,
    TableInfo, TableList, TableSummary,
};
use icedb::{MergePolicy, PartitionFilter, QueryOptions, Table};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{
    ActivityKind, ActivityRow, ActivityStatus, Dashboard, FileRow, Overview, PartitionRow,
    PluginRow, QueryOutcome,
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
        let tables: TableList = host.get("/v1/tables").await?;
        let names: Vec<String> = tables.tables.into_iter().map(|t| t.name).collect();
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
                    .files_without_bytes(&PartitionFilter::Prefix(partition.to_owned()))?
                    .into_iter()
                    .filter(|f| f.partition == partition)
                    .map(|f| FileRow::new(&s.table, f))
                    .collect())
            }
            Source::Host(h) => {
                let answer: FileList = h
                    .get(&format!(
                        "/v1/tables/{}/files?partition={}",
                        h.table,
                        urlencode(partition)
                    ))
                    .await?;
                Ok(answer
                    .files
                    .into_iter()
                    .filter(|f| f.partition == partition)
                    .collect())
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
        let done: MergeAnswer = match self {
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
            done.report.files_in, done.report.files_out, done.report.jobs, done.report.conflicts
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
            .map(|p| {
                let backlog = cold.get(&p.partition).copied().unwrap_or(0);
                PartitionRow::new(p, backlog)
            })
            .collect();
        let overview = Overview {
            summary: TableSummary::of(&self.table, &snapshot)?,
            tombstones: snapshot.tombstones()?.len(),
            ..Overview::default()
        }
        .with_definition(self.table.definition());
        let plugins = self
            .table
            .plugins()
            .into_iter()
            .map(PluginRow::from)
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
            Ok(r) => (
                ActivityStatus::Ok,
                None,
                serde_json::json!({"rows": r.row_count()}),
            ),
            Err(e) => (ActivityStatus::Error, Some(e.to_string()), Value::Null),
        };
        self.record(ActivityRow {
            id: 0,
            kind: ActivityKind::Query,
            table: self.table.name().to_owned(),
            label: sql.to_owned(),
            started_ms,
            duration_ms: Some((now_ms() - started_ms) as f64),
            status,
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

    async fn merge(&self, policy: &str) -> Result<MergeAnswer> {
        let policy = match policy {
            "hot" => MergePolicy::hot(),
            "cold" => MergePolicy::cold(),
            other => bail!("unknown merge policy {other}"),
        };
        let started = Instant::now();
        let started_ms = now_ms();
        let result = self.table.merge_once(&policy).await;
        let answer = result
            .as_ref()
            .ok()
            .map(|report| MergeAnswer::new(&policy.name, report));
        self.record(ActivityRow {
            id: 0,
            kind: ActivityKind::Merge,
            table: self.table.name().to_owned(),
            label: format!("{} policy", policy.name),
            started_ms,
            duration_ms: Some(started.elapsed().as_secs_f64() * 1e3),
            status: match &answer {
                Some(a) if a.report.conflicts > 0 => ActivityStatus::Conflict,
                Some(_) => ActivityStatus::Ok,
                None => ActivityStatus::Error,
            },
            error: result.as_ref().err().map(ToString::to_string),
            detail: answer
                .as_ref()
                .map_or(Value::Null, |a| serde_json::to_value(a).unwrap_or_default()),
        });
        result?;
        Ok(answer.unwrap_or_default())
    }
}

impl HostSource {
    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching {}", self.base))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading an answer of {}", self.base))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<icedb::api::ErrorAnswer>(&body)
                .map_or_else(|_| "(no message)".to_owned(), |e| e.error);
            bail!("{} answered {status}: {message}", self.base);
        }
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "reading an answer of {} (another IceDB version?)",
                self.base
            )
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn dashboard(&self) -> Result<Dashboard> {
        let t = &self.table;
        let info: TableInfo = self.get(&format!("/v1/tables/{t}")).await?;
        let partitions: PartitionList = self.get(&format!("/v1/tables/{t}/partitions")).await?;
        let commits: CommitList = self
            .get(&format!("/v1/tables/{t}/commits?limit={RECENT}"))
            .await?;
        let answer: ActivityList = self.get(&format!("/v1/activity?limit={RECENT}")).await?;
        let mut activity = answer.running;
        activity.extend(answer.recent);
        activity.retain(|a| a.table == *t);
        let overview = Overview {
            summary: info.summary,
            tombstones: info.tombstones,
            ..Overview::default()
        }
        .with_definition(&info.definition);
        Ok(Dashboard {
            overview,
            partitions: partitions.partitions,
            commits: commits.commits,
            activity,
            backlog: info.merge_backlog.into_iter().collect(),
            plugins: info.plugins,
        })
    }

    async fn query(&self, sql: &str) -> Result<QueryOutcome> {
        let request = QueryRequest {
            sql: sql.to_owned(),
            table: Some(self.table.clone()),
            ..QueryRequest::default()
        };
        let answer: QueryAnswer = self
            .send(
                self.client
                    .post(format!("{}/v1/query", self.base))
                    .json(&request),
            )
            .await?;
        let columns: Vec<String> = answer.columns.into_iter().map(|c| c.name).collect();
        let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(answer.rows.get())?;
        let rows = rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| match row.get(c) {
                        None | Some(Value::Null) => "NULL".to_owned(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        Ok(QueryOutcome {
            sql: sql.to_owned(),
            columns,
            rows,
            elapsed_ms: answer.elapsed_ms,
            version: answer.version,
            files_scanned: answer.files_scanned as u64,
            files_pruned: answer.files_pruned as u64,
        })
    }
}
