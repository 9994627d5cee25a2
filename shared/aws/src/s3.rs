//! Objects in Amazon S3.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use okr_consumers::warehouse::local::LocalSink;
use okr_consumers::warehouse::{ObjectSink, SinkError, WarehouseUrl};

/// The sink `WAREHOUSE_URL` names: the bucket and prefix through `config`'s S3 client,
/// or a local directory.
pub fn warehouse_sink(
    url: WarehouseUrl,
    config: &aws_types::SdkConfig,
) -> std::sync::Arc<dyn ObjectSink> {
    match url {
        WarehouseUrl::S3 { bucket, prefix } => {
            std::sync::Arc::new(S3Sink::new(S3Sink::client(config), bucket, prefix))
        }
        WarehouseUrl::Local(path) => std::sync::Arc::new(LocalSink::new(path)),
    }
}

/// Writes `s3://<bucket>/<prefix>/<key>` with one PutObject (whole or not at all).
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Sink {
    /// An S3 client for `config`; path-style addressing when a custom endpoint is set
    /// (moto, MinIO), where bucket subdomains do not resolve.
    pub fn client(config: &aws_types::SdkConfig) -> Client {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some());
        Client::from_conf(s3.build())
    }

    /// A sink in `bucket` under `prefix` (may be empty).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Sink {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl ObjectSink for S3Sink {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), SinkError> {
        let full_key = match self.prefix.as_str() {
            "" => key.to_owned(),
            prefix => format!("{prefix}/{key}"),
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .content_type("application/gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(drop)
            .map_err(|error| SinkError {
                key: full_key,
                source: Box::new(error),
            })
    }
}
