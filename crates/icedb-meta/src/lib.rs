//! icedb-meta owns IceDB's meta store: the commit log in object storage
//! (`_icedb/log/<version>.json`, one conditional create per version), the
//! local redb replica kept in sync with it, checkpoints and conflict checks.
//! It knows nothing of plugins or of Parquet contents.
//!
//! Not built yet: see the "Meta store" issue. The crate exists so the
//! workspace has its final shape and dependency direction.
