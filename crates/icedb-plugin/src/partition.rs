use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use crate::bindings::partition_world::{PartitionPlugin as PartitionBindings, PartitionPluginPre};
use crate::bindings::{Batch, Column, Value};
use crate::error::{PluginError, PluginErrorKind};
use crate::format::run_blocking;
use crate::host::{ComponentInfo, PluginHost};
use crate::pool::{Guest, Pool};
use crate::sandbox::Sandbox;
use crate::stats::PluginStats;

/// The longest partition path accepted, in bytes.
pub const MAX_PARTITION_PATH_LEN: usize = 512;

/// Why a partition path is refused (see `validate_partition_path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionPathError {
    #[error("the partition path is empty")]
    Empty,
    #[error("partition path `{0}` is longer than {MAX_PARTITION_PATH_LEN} bytes")]
    TooLong(String),
    #[error("partition path `{0}` starts or ends with `/`")]
    OuterSlash(String),
    #[error("partition path `{0}` has an empty segment")]
    EmptySegment(String),
    #[error("partition path `{0}` has a `.` or `..` segment")]
    DotSegment(String),
    #[error(
        "partition path `{path}` contains {found:?}; allowed are ASCII letters, digits and = - _ . + ,"
    )]
    BadCharacter { path: String, found: char },
}

/// Checks that a partition path is safe to become part of an object key:
/// `/`-separated non-empty segments of ASCII letters, digits and `=-_.+,`,
/// no `.` or `..` segment, no leading or trailing `/`, at most
/// [`MAX_PARTITION_PATH_LEN`] bytes. (The same rules are in `wit/icedb.wit`.)
pub fn validate_partition_path(path: &str) -> Result<(), PartitionPathError> {
    if path.is_empty() {
        return Err(PartitionPathError::Empty);
    }
    if path.len() > MAX_PARTITION_PATH_LEN {
        let shown: String = path.chars().take(64).collect();
        return Err(PartitionPathError::TooLong(format!("{shown}…")));
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Err(PartitionPathError::OuterSlash(path.to_owned()));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(PartitionPathError::EmptySegment(path.to_owned()));
        }
        if segment == "." || segment == ".." {
            return Err(PartitionPathError::DotSegment(path.to_owned()));
        }
        if let Some(found) = segment.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '=' | '-' | '_' | '.' | '+' | ','))
        }) {
            return Err(PartitionPathError::BadCharacter {
                path: path.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

/// A loaded `partition-strategy` plugin. Cheap to clone; usable from many
/// threads and tasks at once.
#[derive(Clone)]
pub struct PartitionPlugin {
    pool: Arc<Pool<PartitionBindings>>,
    fields: Arc<[String]>,
}

impl Guest for PartitionBindings {
    type Pre = PartitionPluginPre<Sandbox>;

    fn pre(instance_pre: InstancePre<Sandbox>) -> wasmtime::Result<Self::Pre> {
        PartitionPluginPre::new(instance_pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<Sandbox>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn configure(
        &self,
        store: &mut Store<Sandbox>,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.icedb_plugin_partition_strategy()
            .call_configure(store, &settings.to_vec())
    }
}

impl PartitionPlugin {
    pub(crate) fn new(
        host: PluginHost,
        info: ComponentInfo,
        component: &Component,
        settings: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        let pool = Pool::new(host, info, component, settings)?;
        let fields: Vec<String> = pool.call("fields", 0, |guest: &PartitionBindings, store| {
            guest
                .icedb_plugin_partition_strategy()
                .call_fields(store)
                .map(Ok)
        })?;
        if fields.is_empty() {
            return Err(PluginError::new(
                pool.name(),
                "fields",
                PluginErrorKind::InvalidOutput,
                "names no fields; a partition strategy must read at least one column",
            ));
        }
        Ok(PartitionPlugin {
            pool: Arc::new(pool),
            fields: fields.into(),
        })
    }

    pub fn name(&self) -> &str {
        self.pool.name()
    }

    pub fn info(&self) -> &ComponentInfo {
        &self.pool.info
    }

    pub fn stats(&self) -> PluginStats {
        self.pool.counters.snapshot()
    }

    /// The formatted columns this strategy reads, in the order it wants them.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The columns of `batch` this strategy reads (a missing one as nulls),
    /// ready for [`partition`](Self::partition).
    pub fn project(&self, batch: &Batch) -> Batch {
        let columns = self
            .fields
            .iter()
            .map(|name| match batch.column(name) {
                Some(column) => column.clone(),
                None => Column {
                    name: name.clone(),
                    values: vec![Value::Null; batch.row_count as usize],
                },
            })
            .collect();
        Batch {
            row_count: batch.row_count,
            columns,
        }
    }

    /// Partition paths for a projected batch, one per row, on the calling
    /// thread. Every path is validated.
    pub fn partition_blocking(&self, projected: &Batch) -> Result<Vec<String>, PluginError> {
        let rows = projected.row_count as usize;
        let paths = self.pool.call("partition", rows, |guest, store| {
            guest
                .icedb_plugin_partition_strategy()
                .call_partition(store, projected)
        })?;
        if paths.len() != rows {
            return Err(self.pool.invalid_output(
                "partition",
                None,
                format!(
                    "returned {} partition paths for a batch of {rows} rows",
                    paths.len()
                ),
            ));
        }
        // Paths repeat heavily within a batch; validate each distinct one once.
        let mut last_valid: Option<&str> = None;
        for (row, path) in paths.iter().enumerate() {
            if last_valid == Some(path.as_str()) {
                continue;
            }
            validate_partition_path(path).map_err(|e| {
                self.pool
                    .invalid_output("partition", Some(row as u32), e.to_string())
            })?;
            last_valid = Some(path);
        }
        Ok(paths)
    }

    /// Partition paths for a projected batch, on tokio's blocking pool.
    pub async fn partition(&self, projected: Batch) -> Result<Vec<String>, PluginError> {
        let this = self.clone();
        run_blocking(move || this.partition_blocking(&projected)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hive_paths() {
        for ok in ["y=2026/m=11/d=24", "a", "region=eu-west_1/v=1.5", "k=a+b,c"] {
            assert_eq!(validate_partition_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_paths() {
        let long = "a".repeat(MAX_PARTITION_PATH_LEN + 1);
        type Expect = fn(&PartitionPathError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, PartitionPathError::Empty)),
            ("../x", |e| matches!(e, PartitionPathError::DotSegment(_))),
            ("a/./b", |e| matches!(e, PartitionPathError::DotSegment(_))),
            ("/abs", |e| matches!(e, PartitionPathError::OuterSlash(_))),
            ("a/", |e| matches!(e, PartitionPathError::OuterSlash(_))),
            ("a//b", |e| matches!(e, PartitionPathError::EmptySegment(_))),
            ("a b", |e| {
                matches!(e, PartitionPathError::BadCharacter { found: ' ', .. })
            }),
            ("a\\b", |e| {
                matches!(e, PartitionPathError::BadCharacter { found: '\\', .. })
            }),
            ("ü=1", |e| {
                matches!(e, PartitionPathError::BadCharacter { found: 'ü', .. })
            }),
            (&long, |e| matches!(e, PartitionPathError::TooLong(_))),
        ];
        for (path, expected) in cases {
            let error = validate_partition_path(path).expect_err(path);
            assert!(expected(&error), "{path}: {error}");
        }
    }
}
