//! Table roots as URLs: `s3://bucket/prefix`, `file:///abs/path`, or a plain
//! local path. Every read and write of a table goes through the
//! `object_store` this module builds, scoped to the root.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};

use crate::error::{MetaError, Result};

/// S3 settings beyond the standard AWS environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, keys and session
/// token, web identity, container and instance credentials), which are read
/// first; only what is set here overrides them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// E.g. `http://127.0.0.1:9000` for an S3-compatible server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain-HTTP endpoints (unset: `AWS_ALLOW_HTTP`, or yes when the
    /// endpoint itself is `http://`).
    pub allow_http: Option<bool>,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted
    /// (unset: `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, else path-style, which
    /// every S3-compatible server and AWS itself accept).
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How requests are timed out and retried.
    pub retry: RetryOptions,
}

/// How each S3 request is timed out and retried (5xx such as 503 SlowDown,
/// 429, connection errors and time-outs). A request that gives up fails
/// with an error naming the object and the last error; a commit whose
/// request gave up after it may have landed is resolved by the commit
/// protocol, not by these retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// Retries of one request (0: none).
    pub max_retries: usize,
    /// No retry starts later than this after the first try.
    pub retry_timeout: Duration,
    /// One try's time limit, from sending to the end of the answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// First back-off; doubles up to `backoff_max` (with jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(15),
        }
    }
}

/// Where a table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableLocation {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        options: Box<S3Options>,
    },
}

impl TableLocation {
    /// Parses a table root. Plain paths are relative to the working directory.
    pub fn parse(url: &str, s3: &S3Options) -> Result<Self> {
        let invalid = |reason: &str| MetaError::InvalidLocation {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name"));
            }
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(TableLocation::S3 {
                bucket: bucket.to_owned(),
                prefix,
                options: Box::new(s3.clone()),
            });
        }
        if url.starts_with("file://") {
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("not an absolute file path"))?;
            return Ok(TableLocation::Local(path));
        }
        if url.contains("://") {
            return Err(invalid(
                "unsupported scheme (use s3://, file:// or a local path)",
            ));
        }
        if url.is_empty() {
            return Err(invalid("empty path"));
        }
        Ok(TableLocation::Local(PathBuf::from(url)))
    }

    /// A stable text form, used to name the local replica directory.
    pub fn canonical(&self) -> String {
        match self {
            TableLocation::Local(path) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                format!("file://{}", absolute.display())
            }
            TableLocation::S3 {
                bucket,
                prefix,
                options,
            } => {
                let endpoint = options
                    .endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT").ok());
                format!(
                    "s3://{bucket}/{prefix}@{}",
                    endpoint.as_deref().unwrap_or("aws")
                )
            }
        }
    }

    /// The object store rooted at the table (keys are relative to the root).
    /// Local writes are fsynced (file and directory) before they return.
    pub fn open_store(&self) -> Result<Arc<dyn ObjectStore>> {
        self.open_store_with(true)
    }

    /// As [`open_store`](Self::open_store); `fsync: false` leaves local
    /// writes in the page cache (only for measuring what fsync costs).
    pub fn open_store_with(&self, fsync: bool) -> Result<Arc<dyn ObjectStore>> {
        match self {
            TableLocation::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| MetaError::InvalidLocation {
                    url: path.display().to_string(),
                    reason: format!("cannot create the directory: {e}"),
                })?;
                if fsync {
                    let store = crate::durable::DurableLocal::new(path)
                        .map_err(|e| MetaError::store(path.display(), e))?;
                    return Ok(Arc::new(store));
                }
                let store = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| MetaError::store(path.display(), e))?;
                Ok(Arc::new(store))
            }
            TableLocation::S3 { bucket, prefix, .. } => {
                let store = self
                    .s3_builder()?
                    .build()
                    .map_err(|e| MetaError::store(format!("s3://{bucket}"), e))?;
                if prefix.is_empty() {
                    Ok(Arc::new(store))
                } else {
                    Ok(Arc::new(crate::prefixed::Prefixed::new(
                        Arc::new(store),
                        prefix.as_str(),
                    )))
                }
            }
        }
    }

    /// The S3 client settings: the AWS environment first, then what the
    /// options set.
    fn s3_builder(&self) -> Result<AmazonS3Builder> {
        let TableLocation::S3 {
            bucket, options, ..
        } = self
        else {
            return Err(MetaError::InvalidLocation {
                url: self.canonical(),
                reason: "not an S3 location".to_owned(),
            });
        };
        let retry = &options.retry;
        let client = |key: ClientConfigKey, value: String| (AmazonS3ConfigKey::Client(key), value);
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: retry.backoff_initial,
                    max_backoff: retry.backoff_max,
                    base: 2.0,
                },
                max_retries: retry.max_retries,
                retry_timeout: retry.retry_timeout,
            });
        for (key, value) in [
            client(
                ClientConfigKey::Timeout,
                humantime_string(retry.request_timeout),
            ),
            client(
                ClientConfigKey::ConnectTimeout,
                humantime_string(retry.connect_timeout),
            ),
        ] {
            builder = builder.with_config(key, value);
        }
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(path_style) = options.path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        match options.allow_http {
            Some(allow) => builder = builder.with_allow_http(allow),
            // An explicit http:// endpoint is the user's choice, as with the
            // AWS SDKs.
            None if endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")) =>
            {
                builder = builder.with_allow_http(true);
            }
            None => {}
        }
        Ok(builder)
    }

    /// What a second S3 client (DuckDB's) needs to reach the table as
    /// object_store does: the same endpoint, region and URL style, and the
    /// same credential chain (refreshed before expiry). `None` for local
    /// tables.
    pub fn s3_access(&self) -> Result<Option<S3Access>> {
        let TableLocation::S3 { bucket, .. } = self else {
            return Ok(None);
        };
        let builder = self.s3_builder()?;
        let value = |key| builder.get_config_value(&key);
        let endpoint = value(AmazonS3ConfigKey::Endpoint);
        let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
        let virtual_hosted =
            value(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let store = builder
            .build()
            .map_err(|e| MetaError::store(format!("s3://{bucket}"), e))?;
        Ok(Some(S3Access {
            endpoint,
            region,
            path_style: !virtual_hosted,
            credentials: store.credentials().clone(),
        }))
    }
}

/// How to reach an S3 table from another client (see
/// [`TableLocation::s3_access`]).
#[derive(Clone)]
pub struct S3Access {
    /// `http(s)://host[:port]`, or `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub credentials: object_store::aws::AwsCredentialProvider,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

fn humantime_string(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let s3 = S3Options::default();
        assert_eq!(
            TableLocation::parse("s3://bkt/a/b/", &s3).unwrap(),
            TableLocation::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into(),
                options: Box::new(s3.clone())
            }
        );
        assert_eq!(
            TableLocation::parse("file:///tmp/t", &s3).unwrap(),
            TableLocation::Local("/tmp/t".into())
        );
        assert_eq!(
            TableLocation::parse("./data/t", &s3).unwrap(),
            TableLocation::Local("./data/t".into())
        );
        for bad in ["s3://", "gs://x/y", "", "file://relative"] {
            assert!(TableLocation::parse(bad, &s3).is_err(), "{bad}");
        }
    }
}
