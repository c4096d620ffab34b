//! A table under a key prefix of a bucket: `object_store`'s `PrefixStore`
//! for everything but deletes of many keys, which it sends one request per
//! key (object_store 0.12); here they reach the bucket's own
//! `delete_stream`, which on S3 deletes 1 000 keys per request.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

#[derive(Debug)]
pub(crate) struct Prefixed {
    bucket: Arc<dyn ObjectStore>,
    prefixed: PrefixStore<Arc<dyn ObjectStore>>,
    prefix: Path,
}

impl Prefixed {
    pub(crate) fn new(bucket: Arc<dyn ObjectStore>, prefix: &str) -> Prefixed {
        Prefixed {
            prefixed: PrefixStore::new(bucket.clone(), prefix),
            prefix: Path::from(prefix),
            bucket,
        }
    }
}

impl std::fmt::Display for Prefixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.prefixed)
    }
}

#[async_trait]
impl ObjectStore for Prefixed {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.prefixed.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.prefixed.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.prefixed.get_opts(location, options).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.prefixed.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.prefixed.delete(location).await
    }

    fn delete_stream<'a>(
        &'a self,
        locations: BoxStream<'a, Result<Path>>,
    ) -> BoxStream<'a, Result<Path>> {
        let full = locations
            .map_ok(|location| {
                self.prefix
                    .parts()
                    .chain(location.parts())
                    .collect::<Path>()
            })
            .boxed();
        self.bucket
            .delete_stream(full)
            .map_ok(|location| {
                let stripped: Option<Path> = location
                    .prefix_match(&self.prefix)
                    .map(|rest| rest.collect());
                stripped.unwrap_or(location)
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.prefixed.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.prefixed.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.prefixed.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.prefixed.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.prefixed.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use object_store::memory::InMemory;

    use super::*;

    /// An in-memory bucket that records the keys of each `delete_stream`.
    #[derive(Debug, Default)]
    struct Recording {
        store: InMemory,
        bulk: Mutex<Vec<Path>>,
    }

    impl std::fmt::Display for Recording {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("recording")
        }
    }

    #[async_trait]
    impl ObjectStore for Recording {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.store.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.store.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            self.store.get_opts(l, o).await
        }
        async fn delete(&self, _: &Path) -> Result<()> {
            panic!("one-key delete: deletes of many keys must go through delete_stream")
        }
        fn delete_stream<'a>(
            &'a self,
            locations: BoxStream<'a, Result<Path>>,
        ) -> BoxStream<'a, Result<Path>> {
            locations
                .and_then(move |l| async move {
                    self.bulk.lock().unwrap().push(l.clone());
                    self.store.delete(&l).await.map(|()| l)
                })
                .boxed()
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.store.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.store.list_with_delimiter(p).await
        }
        async fn copy(&self, f: &Path, t: &Path) -> Result<()> {
            self.store.copy(f, t).await
        }
        async fn copy_if_not_exists(&self, f: &Path, t: &Path) -> Result<()> {
            self.store.copy_if_not_exists(f, t).await
        }
    }

    #[tokio::test]
    async fn many_deletes_reach_the_bucket_as_one_stream_of_full_keys() {
        let bucket = Arc::new(Recording::default());
        let table = Prefixed::new(bucket.clone(), "lake/events");
        let keys: Vec<Path> = (0..5).map(|i| Path::from(format!("data/f{i}"))).collect();
        for key in &keys {
            table.put(key, PutPayload::from("x")).await.unwrap();
        }
        let deleted: Vec<Path> = table
            .delete_stream(futures::stream::iter(keys.clone().into_iter().map(Ok)).boxed())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(deleted, keys, "answers name the table's own keys");
        let bulk = bucket.bulk.lock().unwrap().clone();
        let expected: Vec<Path> = (0..5)
            .map(|i| Path::from(format!("lake/events/data/f{i}")))
            .collect();
        assert_eq!(bulk, expected, "the bucket saw every full key");
        let left: Vec<ObjectMeta> = table.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
