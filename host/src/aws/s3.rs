//! Plugin and metrics objects in S3, addressed by `s3://bucket/key` URLs.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// How long reading an object's body may take: the SDK's operation timeout ends when the
/// response starts, and its stalled-stream check only catches a near-stop. A plugin at
/// the size limit takes a minute at 1 MB/s.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A parsed `s3://bucket/key` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<Self, FetchError> {
        let invalid = || FetchError::BadUrl(url.to_string());
        let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
        let (bucket, key) = rest.split_once('/').ok_or_else(invalid)?;
        if bucket.is_empty() || key.is_empty() {
            return Err(invalid());
        }
        Ok(Self { bucket: bucket.to_string(), key: key.to_string() })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not an s3://bucket/key URL: {0}")]
    BadUrl(String),
    #[error("fetching {url} failed: {message}")]
    Get { url: String, message: String },
    #[error("{url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("uploading {url} failed: {message}")]
    Put { url: String, message: String },
    #[error("{url} is {actual}, but the registry says sha256:{expected}")]
    DigestMismatch { url: String, expected: String, actual: String },
    #[error("metrics at {url} are not JSON: {message}")]
    BadMetrics { url: String, message: String },
}

#[derive(Clone)]
pub struct ObjectStore {
    client: Client,
}

impl ObjectStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The object's bytes, refused beyond `limit` bytes: by its stated length before
    /// any is read, and by what arrives while reading (within [`BODY_READ_TIMEOUT`]).
    pub async fn get(&self, url: &S3Url, limit: u64) -> Result<Vec<u8>, FetchError> {
        let failed = |message: String| FetchError::Get { url: url.to_string(), message };
        let too_large = || FetchError::TooLarge { url: url.to_string(), limit };
        let mut object = self
            .client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
            .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
        if object.content_length().is_some_and(|n| u64::try_from(n).map_or(true, |n| n > limit)) {
            return Err(too_large());
        }
        let read = async {
            let mut bytes = Vec::new();
            while let Some(chunk) = object.body.try_next().await.map_err(|e| failed(e.to_string()))? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        };
        tokio::time::timeout(BODY_READ_TIMEOUT, read)
            .await
            .map_err(|_| failed(format!("the body took longer than {BODY_READ_TIMEOUT:?}")))?
    }

    pub async fn put(&self, url: &S3Url, bytes: Vec<u8>, content_type: &str) -> Result<(), FetchError> {
        self.client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| FetchError::Put {
                url: url.to_string(),
                message: DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }

    pub async fn bucket_exists(&self, bucket: &str) -> bool {
        self.client.head_bucket().bucket(bucket).send().await.is_ok()
    }

    /// Creates `bucket` in the client's region.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), FetchError> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        // us-east-1 is the one region that must not be named as a location constraint.
        let region = self.client.config().region().map(|r| r.as_ref().to_string());
        let location = region.filter(|r| r != "us-east-1").map(|r| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(r.as_str()))
                .build()
        });
        let request = self.client.create_bucket().bucket(bucket).set_create_bucket_configuration(location);
        request.send().await.map_err(|e| FetchError::Put {
            url: format!("s3://{bucket}"),
            message: DisplayErrorContext(e).to_string(),
        })?;
        Ok(())
    }
}
