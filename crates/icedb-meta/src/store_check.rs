//! The store check: IceDB's commit protocol is safe only on a store where
//! exactly one of several conditional creates of one key wins.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{MetaError, Result};
use crate::log::STORE_CHECK_DIR;
use crate::meta::MetaStore;

impl MetaStore {
    /// Verifies that the store refuses a second conditional create of the
    /// same key; without that, concurrent writers would overwrite each
    /// other's commits. Runs automatically before the first commit unless
    /// it already passed (a host runs it at start).
    pub async fn check_store(&self) -> Result<()> {
        let path = Path::from(format!("{STORE_CHECK_DIR}/{}", uuid::Uuid::now_v7()));
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let first = self
            .store
            .put_opts(&path, PutPayload::from_static(b"1"), create())
            .await;
        let verdict = match first {
            Err(object_store::Error::NotImplemented) => Err(MetaError::UnsafeStore(
                "it does not implement conditional creates".to_owned(),
            )),
            Err(e) => Err(MetaError::store(&path, e)),
            Ok(_) => match self
                .store
                .put_opts(&path, PutPayload::from_static(b"2"), create())
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Ok(_) => Err(MetaError::UnsafeStore(format!(
                    "a second create of {path} succeeded and overwrote the first"
                ))),
                Err(object_store::Error::NotImplemented) => Err(MetaError::UnsafeStore(
                    "it does not implement conditional creates".to_owned(),
                )),
                Err(e) => Err(MetaError::store(&path, e)),
            },
        };
        if let Err(error) = self.store.delete(&path).await {
            tracing::debug!(%error, "could not remove the store-check object");
        }
        if verdict.is_ok() {
            self.store_checked
                .store(true, std::sync::atomic::Ordering::Release);
        }
        verdict
    }
}

/// What [`race_conditional_creates`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRace {
    pub racers: usize,
    /// Creates that reported success; a safe store has exactly one.
    pub winners: usize,
    /// Whether the object holds the winner's bytes afterwards.
    pub content_matches_winner: bool,
}

/// Races `racers` concurrent conditional creates of one fresh key (under
/// `_icedb/store-check/`) and reports how many won; cleans up after itself.
/// IceDB's commit protocol is safe only where exactly one wins.
pub async fn race_conditional_creates(
    store: &Arc<dyn ObjectStore>,
    racers: usize,
) -> Result<StoreRace> {
    let path = Path::from(format!("{STORE_CHECK_DIR}/race-{}", uuid::Uuid::now_v7()));
    let attempts: Vec<_> = (0..racers)
        .map(|racer| {
            let (store, path) = (store.clone(), path.clone());
            async move {
                let put = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let outcome = store
                    .put_opts(&path, PutPayload::from(format!("racer-{racer}")), put)
                    .await;
                (racer, outcome)
            }
        })
        .collect();
    let outcomes = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for (racer, outcome) in outcomes {
        match outcome {
            Ok(_) => winners.push(racer),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotImplemented) => {
                return Err(MetaError::UnsafeStore(
                    "it does not implement conditional creates".to_owned(),
                ));
            }
            Err(e) => return Err(MetaError::store(&path, e)),
        }
    }
    let stored = store
        .get(&path)
        .await
        .map_err(|e| MetaError::store(&path, e))?
        .bytes()
        .await
        .map_err(|e| MetaError::store(&path, e))?;
    let content_matches_winner =
        winners.len() == 1 && stored.as_ref() == format!("racer-{}", winners[0]).as_bytes();
    if let Err(error) = store.delete(&path).await {
        tracing::debug!(%error, "could not remove the race object");
    }
    Ok(StoreRace {
        racers,
        winners: winners.len(),
        content_matches_winner,
    })
}
