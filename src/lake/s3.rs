//! The S3 warehouse: an `iceberg` [`Storage`] over the `object_store` crate's S3 client.
//!
//! Credentials come from the standard AWS chain (`aws-config`: environment, shared profile, web
//! identity, ECS task role, EC2 instance role), the same chain the Glue catalog uses, unless the
//! configuration names static keys. They are cached until five minutes before they expire.
//! Works with AWS and with S3-compatible servers (`endpoint`, `path_style`).
//!
//! Iceberg hands us absolute locations (`s3://bucket/key`); one client per bucket is built on
//! first use. Reads are ranged GETs; writes go through `object_store`'s buffered writer, which
//! switches to a multipart upload for large files, so a Parquet file never has to fit in memory.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind};
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ClientOptions, CredentialProvider, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::LakeError;
use super::storage::{Listed, Listing};
use crate::config::S3Config;

/// The size of a multipart upload's parts (and of the buffer before a file goes multipart).
const PART_SIZE: usize = 8 << 20;

/// What the S3 clients are built from. Secrets are not part of it (they never serialize).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
}

/// Builds the warehouse's [`FileIO`] for S3, and its listing (sharing the credentials).
pub fn open(config: &S3Config) -> (FileIO, Arc<dyn Listing>) {
    let settings = S3Settings {
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        path_style: config.path_style,
    };
    let credentials = Arc::new(match (&config.access_key_id, &config.secret_access_key) {
        (Some(id), Some(secret)) => Credentials::fixed(id.expose(), secret.expose()),
        _ => Credentials::chain(settings.region.clone()),
    });
    let listing = S3Storage {
        settings: settings.clone(),
        credentials: credentials.clone(),
        stores: Arc::default(),
    };
    let factory = S3StorageFactory {
        settings,
        credentials: Some(credentials),
    };
    (
        FileIOBuilder::new(Arc::new(factory)).build(),
        Arc::new(listing),
    )
}

/// Splits `s3://bucket/key` (also `s3a://`, `s3n://`) into bucket and key.
pub fn split_location(location: &str) -> Option<(&str, &str)> {
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|s| location.strip_prefix(s))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, key))
}

#[derive(Debug, Serialize, Deserialize)]
struct S3StorageFactory {
    settings: S3Settings,
    #[serde(skip)]
    credentials: Option<Arc<Credentials>>,
}

#[typetag::serde]
impl StorageFactory for S3StorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        let credentials = self
            .credentials
            .clone()
            .unwrap_or_else(|| Arc::new(Credentials::chain(self.settings.region.clone())));
        Ok(Arc::new(S3Storage {
            settings: self.settings.clone(),
            credentials,
            stores: Arc::default(),
        }))
    }
}

/// The [`Storage`] of an S3 warehouse.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Storage {
    settings: S3Settings,
    #[serde(skip, default = "default_credentials")]
    credentials: Arc<Credentials>,
    #[serde(skip)]
    stores: Arc<tokio::sync::Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

fn default_credentials() -> Arc<Credentials> {
    Arc::new(Credentials::chain(None))
}

impl S3Storage {
    /// The client of the location's bucket and the object's key.
    async fn locate(&self, location: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, Path)> {
        let (bucket, key) = split_location(location).ok_or_else(|| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("{location} is not an s3://bucket/key location"),
            )
        })?;
        let path = Path::parse(key).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("{location} is not a valid object key: {e}"),
            )
        })?;
        let mut stores = self.stores.lock().await;
        let store = match stores.get(bucket) {
            Some(s) => s.clone(),
            None => {
                let s = self.build_store(bucket).await?;
                stores.insert(bucket.to_string(), s.clone());
                s
            }
        };
        Ok((store, path))
    }

    async fn build_store(&self, bucket: &str) -> iceberg::Result<Arc<dyn ObjectStore>> {
        let s = &self.settings;
        let region = match &s.region {
            Some(r) => r.clone(),
            None => crate::aws::sdk_config(None)
                .await
                .region()
                .map(|r| r.to_string())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::DataInvalid,
                        format!(
                            "no AWS region for bucket {bucket}: set warehouse.s3.region, or \
                             AWS_REGION, or a region in the AWS profile"
                        ),
                    )
                })?,
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_credentials(self.credentials.clone())
            .with_virtual_hosted_style_request(!s.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300))
                    .with_allow_http(
                        s.endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            );
        if let Some(endpoint) = &s.endpoint {
            b = b.with_endpoint(endpoint_url(endpoint, bucket, s.path_style));
        }
        let store = b.build().map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("cannot build an S3 client for bucket {bucket}: {e}"),
            )
        })?;
        Ok(Arc::new(store))
    }
}

/// The URL `object_store` needs for an endpoint override: the endpoint itself in path style;
/// in virtual-hosted style `object_store` takes the endpoint as the bucket's own URL, so the
/// bucket goes in front of the host (`https://s3.eu-west-1.amazonaws.com` →
/// `https://bucket.s3.eu-west-1.amazonaws.com`).
fn endpoint_url(endpoint: &str, bucket: &str, path_style: bool) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if path_style {
        return endpoint.to_string();
    }
    match endpoint.split_once("://") {
        Some((scheme, host)) if !host.starts_with(&format!("{bucket}.")) => {
            format!("{scheme}://{bucket}.{host}")
        }
        _ => endpoint.to_string(),
    }
}

/// An `object_store` error as an iceberg error naming the operation and the location. Missing
/// objects, refused credentials and other client errors (4xx but 408/429, a wrong region) are
/// not worth retrying; network failures, 5xx and throttling past object_store's own retries are.
fn s3_error(op: &str, location: &str, e: object_store::Error) -> Error {
    let text = e.to_string();
    let client_error = is_client_error(&text);
    let wrong_region = text.contains("Received redirect without LOCATION");
    let permanent = client_error
        || wrong_region
        || matches!(
            e,
            object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::InvalidPath { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. }
        );
    let kind = if permanent {
        ErrorKind::DataInvalid
    } else {
        ErrorKind::Unexpected
    };
    let hint = if wrong_region {
        " (the bucket is in another region: set warehouse.s3.region)"
    } else {
        ""
    };
    Error::new(kind, format!("S3 {op} {location}: {text}{hint}")).with_retryable(!permanent)
}

/// Whether object_store's message reports an HTTP 4xx other than 408 (timeout) and 429
/// (throttled). object_store keeps the status in a crate-private error type; its message is
/// `… status code: 400 Bad Request …`.
fn is_client_error(text: &str) -> bool {
    ["status code: 4", "error response: 4"].iter().any(|m| {
        text.match_indices(m).any(|(i, _)| {
            let code = &text[i + m.len() - 1..];
            code.len() >= 3
                && code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && !code.starts_with("408")
                && !code.starts_with("429")
        })
    })
}

/// An I/O error from the buffered writer, as an S3 error when it carries one.
fn write_error(location: &str, e: std::io::Error) -> Error {
    match e
        .into_inner()
        .map(|inner| inner.downcast::<object_store::Error>())
    {
        Some(Ok(e)) => s3_error("PUT", location, *e),
        Some(Err(other)) => {
            Error::new(ErrorKind::Unexpected, format!("S3 PUT {location}: {other}"))
                .with_retryable(true)
        }
        None => Error::new(ErrorKind::Unexpected, format!("S3 PUT {location} failed"))
            .with_retryable(true),
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.locate(path).await?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_error("HEAD", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.locate(path).await?;
        let meta = store
            .head(&key)
            .await
            .map_err(|e| s3_error("HEAD", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.locate(path).await?;
        let got = store
            .get(&key)
            .await
            .map_err(|e| s3_error("GET", path, e))?;
        got.bytes().await.map_err(|e| s3_error("GET", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path).await?;
        Ok(Box::new(S3Read {
            store,
            key,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.locate(path).await?;
        store
            .put(&key, bs.into())
            .await
            .map_err(|e| s3_error("PUT", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path).await?;
        Ok(Box::new(S3Write {
            ended: "already closed",
            // Parts of 8 MiB, at most four in flight: a file being written holds at most
            // ~40 MiB beyond what the Parquet writer buffers, whatever the upload speed.
            writer: Some(BufWriter::with_capacity(store, key, PART_SIZE).with_max_concurrency(4)),
            location: path.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.locate(path).await?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error("DELETE", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.locate(path).await?;
        if key.as_ref().is_empty() {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("refusing to delete everything in bucket {path}"),
            ));
        }
        let listed = store.list(Some(&key)).map_ok(|m| m.location).boxed();
        store
            .delete_stream(listed)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| s3_error("DELETE", path, e))?;
        Ok(())
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        // Batched per bucket: DeleteObjects takes up to 1,000 keys a request.
        let paths: Vec<String> = paths.collect().await;
        let mut by_bucket: HashMap<String, (Arc<dyn ObjectStore>, Vec<Path>)> = HashMap::new();
        for p in &paths {
            let (store, key) = self.locate(p).await?;
            let bucket = split_location(p)
                .map(|(b, _)| b.to_string())
                .unwrap_or_default();
            by_bucket
                .entry(bucket)
                .or_insert_with(|| (store, Vec::new()))
                .1
                .push(key);
        }
        for (bucket, (store, keys)) in by_bucket {
            let keys = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
            let mut results = store.delete_stream(keys);
            while let Some(r) = results.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(s3_error("DELETE", &format!("s3://{bucket}"), e)),
                }
            }
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

#[async_trait]
impl Listing for S3Storage {
    async fn list(&self, folder: &str) -> Result<Vec<Listed>, LakeError> {
        let storage = |e: Error| LakeError::Storage {
            location: folder.to_string(),
            message: e.to_string(),
        };
        let (store, key) = self.locate(folder).await.map_err(storage)?;
        if key.as_ref().is_empty() {
            return Err(LakeError::Storage {
                location: folder.to_string(),
                message: "refusing to list a whole bucket".into(),
            });
        }
        let bucket = split_location(folder).map(|(b, _)| b).unwrap_or_default();
        store
            .list(Some(&key))
            .map_ok(|m| Listed {
                location: format!("s3://{bucket}/{}", m.location),
                size: m.size,
                modified: m.last_modified.into(),
            })
            .try_collect()
            .await
            .map_err(|e| storage(s3_error("LIST", folder, e)))
    }
}

struct S3Read {
    store: Arc<dyn ObjectStore>,
    key: Path,
    location: String,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| s3_error("GET", &self.location, e))
    }
}

struct S3Write {
    writer: Option<BufWriter>,
    location: String,
    /// Why the writer is gone, for a write or close after a failure.
    ended: &'static str,
}

impl S3Write {
    fn open(&mut self) -> iceberg::Result<&mut BufWriter> {
        let (location, ended) = (&self.location, self.ended);
        self.writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Unexpected, format!("{location} was {ended}")))
    }
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let location = self.location.clone();
        let w = self.open()?;
        if let Err(e) = w.put(bs).await {
            // Leave no multipart upload behind.
            let _ = w.abort().await;
            self.writer = None;
            self.ended = "aborted after a failed write";
            return Err(s3_error("PUT", &location, e));
        }
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let location = self.location.clone();
        self.open()?;
        let mut w = self.writer.take().expect("open");
        self.ended = "already closed";
        if let Err(e) = w.shutdown().await {
            // A failed completion leaves the upload open: abort it (AWS's lifecycle rule is the
            // backstop; other servers have none).
            let _ = w.abort().await;
            return Err(write_error(&location, e));
        }
        Ok(())
    }
}

/// AWS credentials for the S3 client: fixed keys, or the standard chain with a cache.
#[derive(Debug)]
pub struct Credentials {
    source: Source,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[derive(Debug)]
enum Source {
    Fixed(Arc<AwsCredential>),
    Chain {
        region: Option<String>,
        provider: tokio::sync::OnceCell<Option<SharedCredentialsProvider>>,
    },
}

impl Credentials {
    fn fixed(key_id: &str, secret_key: &str) -> Self {
        Credentials {
            source: Source::Fixed(Arc::new(AwsCredential {
                key_id: key_id.to_string(),
                secret_key: secret_key.to_string(),
                token: None,
            })),
            cached: Default::default(),
        }
    }

    fn chain(region: Option<String>) -> Self {
        Credentials {
            source: Source::Chain {
                region,
                provider: Default::default(),
            },
            cached: Default::default(),
        }
    }
}

/// Renew this long before the credentials expire …
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);
/// … but use fetched credentials at least this long.
const MIN_CACHE: Duration = Duration::from_secs(30);

#[async_trait]
impl CredentialProvider for Credentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let (region, provider) = match &self.source {
            Source::Fixed(c) => return Ok(c.clone()),
            Source::Chain { region, provider } => (region, provider),
        };
        let mut cached = self.cached.lock().await;
        if let Some((c, renew)) = cached.as_ref()
            && renew.is_none_or(|t| SystemTime::now() < t)
        {
            return Ok(c.clone());
        }
        let provider = provider
            .get_or_init(|| async {
                crate::aws::sdk_config(region.as_deref())
                    .await
                    .credentials_provider()
            })
            .await;
        let no_credentials = |message: String| object_store::Error::Generic {
            store: "S3",
            source: message.into(),
        };
        let provider = provider.as_ref().ok_or_else(|| {
            no_credentials(
                "no AWS credentials provider is configured (set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance or task role)"
                    .into(),
            )
        })?;
        let c = provider.provide_credentials().await.map_err(|e| match e {
            // Nothing in the chain has credentials: no wait will mend that.
            CredentialsError::CredentialsNotLoaded(_) => object_store::Error::Unauthenticated {
                path: "(any)".into(),
                source: format!(
                    "no AWS credentials found by the standard chain (environment, profile, web \
                     identity, task or instance role): {e}"
                )
                .into(),
            },
            // A provider that timed out or failed (IMDS, STS) may answer next time.
            e => no_credentials(format!("loading AWS credentials failed: {e}")),
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        // Renew EXPIRY_MARGIN before expiry, but keep even short-lived credentials (IMDS
        // static stability extends them by minutes) at least MIN_CACHE.
        let renew = c
            .expiry()
            .map(|t| (t - EXPIRY_MARGIN).max(SystemTime::now() + MIN_CACHE));
        *cached = Some((credential.clone(), renew));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_s3_locations() {
        assert_eq!(
            split_location("s3://b/w/x.parquet"),
            Some(("b", "w/x.parquet"))
        );
        assert_eq!(split_location("s3a://b"), Some(("b", "")));
        assert_eq!(split_location("s3:///k"), None);
        assert_eq!(split_location("file:///k"), None);
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        let e = "https://s3.eu-west-1.amazonaws.com/";
        assert_eq!(
            endpoint_url(e, "b", true),
            "https://s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint_url(e, "b", false),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint_url("https://b.s3.eu-west-1.amazonaws.com", "b", false),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn client_errors_are_told_from_throttling() {
        assert!(is_client_error(
            "Server returned non-2xx status code: 400 Bad Request: x"
        ));
        assert!(!is_client_error(
            "Server returned non-2xx status code: 429 Too Many"
        ));
        assert!(!is_client_error(
            "Server returned non-2xx status code: 408 Timeout"
        ));
        assert!(!is_client_error(
            "Server returned non-2xx status code: 503 Slow Down"
        ));
        assert!(!is_client_error("connection reset"));
    }
}
