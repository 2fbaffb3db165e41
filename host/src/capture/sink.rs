//! Where capture files go, laid out as SageMaker lays out an endpoint's capture:
//! `<prefix>/<model>/<version>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl`, with the
//! model's name in place of the endpoint's and its version in place of the variant's,
//! and the time of the file's first record (UTC).

use crate::aws::s3::{ObjectStore, S3Url};
use std::path::PathBuf;
use std::time::SystemTime;

/// A capture destination.
#[derive(Clone)]
pub enum Sink {
    /// `s3://bucket/prefix`: one object per file.
    S3 { store: ObjectStore, bucket: String, prefix: String },
    /// A local directory: one file per file, written whole (through a temporary name).
    Dir(PathBuf),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3 { bucket, prefix, .. } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Splits `s3://bucket` or `s3://bucket/prefix` (a trailing `/` is dropped).
pub fn parse_s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest =
        uri.strip_prefix("s3://").ok_or_else(|| format!("{uri:?} is not an s3://bucket/prefix URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{uri:?} names no bucket"));
    }
    Ok((bucket.to_string(), prefix.trim_end_matches('/').to_string()))
}

impl Sink {
    /// Writes one file of JSON lines at `key` (relative to the sink).
    pub async fn put(&self, key: &str, lines: Vec<u8>) -> Result<(), String> {
        match self {
            Self::S3 { store, bucket, prefix } => {
                let key = if prefix.is_empty() { key.to_string() } else { format!("{prefix}/{key}") };
                let url = S3Url { bucket: bucket.clone(), key };
                store.put(&url, lines, "application/jsonl").await.map_err(|e| e.to_string())
            }
            Self::Dir(dir) => {
                let path = dir.join(key);
                let parent = path.parent().expect("a key has a folder");
                tokio::fs::create_dir_all(parent).await.map_err(|e| format!("{}: {e}", parent.display()))?;
                // Readers never see half a file: it appears under its name only once whole.
                let partial = path.with_extension("jsonl.partial");
                tokio::fs::write(&partial, lines).await.map_err(|e| format!("{}: {e}", partial.display()))?;
                tokio::fs::rename(&partial, &path).await.map_err(|e| format!("{}: {e}", path.display()))
            }
        }
    }
}

/// The key of a new file for `model` and `version` whose first record was at `time`.
pub fn file_key(model: &str, version: &str, time: SystemTime) -> String {
    // 2026-12-02T03:04:05.678Z
    let t = humantime::format_rfc3339_millis(time).to_string();
    let (hour, name) = (
        format!("{}/{}/{}/{}", &t[0..4], &t[5..7], &t[8..10], &t[11..13]),
        format!("{}-{}-{}-{}.jsonl", &t[14..16], &t[17..19], &t[20..23], uuid::Uuid::new_v4()),
    );
    format!("{}/{}/{hour}/{name}", segment(model), segment(version))
}

/// A name as one path segment: no separators, no dot-only names.
fn segment(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') { format!("_{cleaned}") } else { cleaned }
}

#[cfg(test)]
mod tests {
    use super::{file_key, parse_s3_uri};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn keys_follow_sagemakers_layout() {
        // 2026-12-02T03:04:05.678Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_180_645_678);
        let key = file_key("price-sensitivity", "1.1.0", time);
        let (folder, name) = key.rsplit_once('/').unwrap();
        assert_eq!(folder, "price-sensitivity/1.1.0/2026/12/02/03");
        assert!(name.starts_with("04-05-678-") && name.ends_with(".jsonl"), "{name}");
        assert_eq!(file_key("a/b", "..", time).split('/').take(2).collect::<Vec<_>>(), ["a_b", "_.."]);
    }

    #[test]
    fn s3_uris_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(parse_s3_uri("s3://b").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_s3_uri("s3://b/capture/").unwrap(), ("b".into(), "capture".into()));
        assert_eq!(parse_s3_uri("s3://b/a/b").unwrap(), ("b".into(), "a/b".into()));
        assert!(parse_s3_uri("s3:///x").is_err());
        assert!(parse_s3_uri("https://b/x").is_err());
    }
}
