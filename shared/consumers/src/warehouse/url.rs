//! `WAREHOUSE_URL`: where the warehouse is.

use std::path::PathBuf;
use std::str::FromStr;

/// `WAREHOUSE_URL`: `s3://bucket/prefix` or a local directory (a path or `file://` URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseUrl {
    /// An S3 bucket and key prefix (may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without slashes at either end.
        prefix: String,
    },
    /// A local directory.
    Local(PathBuf),
}

impl FromStr for WarehouseUrl {
    type Err = &'static str;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3://bucket/prefix with a bucket name");
            }
            return Ok(WarehouseUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() || url.contains("://") && !url.starts_with("file://") {
            return Err("s3://bucket/prefix or a local directory");
        }
        Ok(WarehouseUrl::Local(PathBuf::from(path)))
    }
}
