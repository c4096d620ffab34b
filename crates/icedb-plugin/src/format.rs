use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use crate::bindings::Batch;
use crate::bindings::format_world::{FormatRowPlugin, FormatRowPluginPre};
use crate::error::PluginError;
use crate::host::{ComponentInfo, PluginHost};
use crate::pool::{Guest, Pool};
use crate::sandbox::Sandbox;
use crate::stats::PluginStats;

/// A loaded `format-row` plugin. Cheap to clone; usable from many threads
/// and tasks at once (each call gets its own instance).
#[derive(Clone)]
pub struct FormatPlugin {
    pool: Arc<Pool<FormatRowPlugin>>,
}

impl Guest for FormatRowPlugin {
    type Pre = FormatRowPluginPre<Sandbox>;

    fn pre(instance_pre: InstancePre<Sandbox>) -> wasmtime::Result<Self::Pre> {
        FormatRowPluginPre::new(instance_pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<Sandbox>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }

    fn configure(
        &self,
        store: &mut Store<Sandbox>,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        self.icedb_plugin_format_row()
            .call_configure(store, &settings.to_vec())
    }
}

impl FormatPlugin {
    pub(crate) fn new(
        host: PluginHost,
        info: ComponentInfo,
        component: &Component,
        settings: Vec<(String, String)>,
    ) -> Result<Self, PluginError> {
        Ok(FormatPlugin {
            pool: Arc::new(Pool::new(host, info, component, settings)?),
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

    /// Formats raw JSON rows on the calling thread.
    pub fn format_blocking(&self, rows: &[String]) -> Result<Batch, PluginError> {
        let batch = self.pool.call("format", rows.len(), |guest, store| {
            guest.icedb_plugin_format_row().call_format(store, rows)
        })?;
        self.check(&batch, rows.len())?;
        Ok(batch)
    }

    /// Formats raw JSON rows on tokio's blocking pool.
    pub async fn format(&self, rows: Vec<String>) -> Result<Batch, PluginError> {
        let this = self.clone();
        run_blocking(move || this.format_blocking(&rows)).await
    }

    fn check(&self, batch: &Batch, expected_rows: usize) -> Result<(), PluginError> {
        let invalid = |message: String| self.pool.invalid_output("format", None, message);
        if batch.row_count as usize != expected_rows {
            return Err(invalid(format!(
                "returned {} rows for a batch of {expected_rows}",
                batch.row_count
            )));
        }
        let mut names = HashSet::with_capacity(batch.columns.len());
        for column in &batch.columns {
            if column.name.is_empty() {
                return Err(invalid("returned a column with an empty name".to_owned()));
            }
            if !names.insert(column.name.as_str()) {
                return Err(invalid(format!("returned column `{}` twice", column.name)));
            }
            if column.values.len() != expected_rows {
                return Err(invalid(format!(
                    "column `{}` has {} values for a batch of {expected_rows} rows",
                    column.name,
                    column.values.len()
                )));
            }
        }
        Ok(())
    }
}

/// Runs plugin work on tokio's blocking pool, re-raising a panic.
pub(crate) async fn run_blocking<R: Send + 'static>(
    work: impl FnOnce() -> Result<R, PluginError> + Send + 'static,
) -> Result<R, PluginError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
