//! Object keys of the log and checkpoints, and reading log entries.

use object_store::path::Path;

use crate::error::{MetaError, Result};
use crate::model::{COMMIT_FORMAT, Commit};

pub(crate) const LOG_DIR: &str = "_icedb/log";
pub(crate) const CHECKPOINT_DIR: &str = "_icedb/checkpoints";
pub(crate) const STORE_CHECK_DIR: &str = "_icedb/store-check";

pub(crate) fn log_path(version: u64) -> Path {
    Path::from(format!("{LOG_DIR}/{version:020}.json"))
}

pub(crate) fn checkpoint_path(version: u64) -> Path {
    Path::from(format!("{CHECKPOINT_DIR}/{version:020}.redb"))
}

/// The version in a log or checkpoint key (`…/00000000000000000042.json`).
pub(crate) fn version_of(path: &Path, extension: &str) -> Option<u64> {
    let name = path.filename()?;
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// What [`parse_entry`] checks of anything read from a log entry.
pub(crate) trait LogEntry: serde::de::DeserializeOwned {
    fn format(&self) -> u32;
    fn version(&self) -> u64;
}

impl LogEntry for Commit {
    fn format(&self) -> u32 {
        self.format
    }
    fn version(&self) -> u64 {
        self.version
    }
}

/// The identity fields of a log entry, read without decoding the rest (its
/// files, statistics and inline rows).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CommitIdentity {
    pub format: u32,
    pub version: u64,
    pub id: String,
    #[serde(default)]
    pub table_id: Option<String>,
}

impl LogEntry for CommitIdentity {
    fn format(&self) -> u32 {
        self.format
    }
    fn version(&self) -> u64 {
        self.version
    }
}

/// Parses a log entry, naming the object on any damage.
pub(crate) fn parse_commit(path: &Path, bytes: &[u8], expected_version: u64) -> Result<Commit> {
    parse_entry(path, bytes, expected_version)
}

/// Parses (part of) a log entry, naming the object on any damage.
pub(crate) fn parse_entry<T: LogEntry>(
    path: &Path,
    bytes: &[u8],
    expected_version: u64,
) -> Result<T> {
    let corrupt = |reason: String| MetaError::CorruptLog {
        object: path.to_string(),
        reason,
    };
    let entry: T =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a valid commit: {e}")))?;
    if entry.format() > COMMIT_FORMAT {
        return Err(corrupt(format!(
            "written in commit format {}, this build reads up to {COMMIT_FORMAT}: upgrade IceDB",
            entry.format()
        )));
    }
    if entry.version() != expected_version {
        return Err(corrupt(format!(
            "holds version {} under the key of version {expected_version}",
            entry.version()
        )));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            log_path(42).as_ref(),
            "_icedb/log/00000000000000000042.json"
        );
        assert_eq!(version_of(&log_path(42), "json"), Some(42));
        assert_eq!(
            version_of(&checkpoint_path(u64::MAX), "redb"),
            Some(u64::MAX)
        );
        assert_eq!(version_of(&Path::from("_icedb/log/42.json"), "json"), None);
        assert_eq!(
            version_of(
                &Path::from("_icedb/log/00000000000000000042.json.tmp"),
                "json"
            ),
            None
        );
    }
}
