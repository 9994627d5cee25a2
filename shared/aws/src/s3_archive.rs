//! The replay archive under an S3 prefix: the warehouse's layout in the bucket the
//! warehouse sink writes, read one partition and one object at a time.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use time::Date;

use okr_consumers::replay::archive::{
    Archive, ArchiveError, partition, partition_date, read_failed, within,
};
use okr_consumers::warehouse::LAYOUT_PREFIX;

/// An archive under `s3://bucket/prefix`.
pub struct S3Archive {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Archive {
    /// The archive in `bucket` under `prefix` (may be empty).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Archive {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn full(&self, key: &str) -> String {
        match self.prefix.as_str() {
            "" => key.to_owned(),
            prefix => format!("{prefix}/{key}"),
        }
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Every page of a listing under `prefix` (with `/` as the delimiter when
    /// `folders`): the keys, or the common prefixes.
    async fn list(&self, prefix: &str, folders: bool) -> Result<Vec<String>, ArchiveError> {
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take());
            if folders {
                request = request.delimiter("/");
            }
            let page = request.send().await.map_err(|e| {
                let missing = e.as_service_error().is_some_and(|e| e.is_no_such_bucket());
                match missing {
                    true => ArchiveError::Missing(self.url()),
                    false => read_failed(format!("s3://{}/{prefix}", self.bucket), e),
                }
            })?;
            if folders {
                found.extend(
                    page.common_prefixes()
                        .iter()
                        .filter_map(|p| p.prefix().map(str::to_owned)),
                );
            } else {
                found.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned)),
                );
            }
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn dates(
        &self,
        first: Option<Date>,
        last: Option<Date>,
    ) -> Result<Vec<Date>, ArchiveError> {
        let layout = format!("{}/", self.full(LAYOUT_PREFIX));
        let folders = self.list(&layout, true).await?;
        if folders.is_empty() {
            return Err(ArchiveError::Missing(self.url()));
        }
        let mut dates: Vec<Date> = folders
            .iter()
            .filter_map(|folder| partition_date(folder.strip_prefix(&layout)?))
            .filter(|date| within(*date, first, last))
            .collect();
        dates.sort();
        Ok(dates)
    }

    async fn objects(&self, date: Date) -> Result<Vec<String>, ArchiveError> {
        let prefix = format!("{}/", self.full(&partition(date)));
        let strip = match self.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        let mut keys: Vec<String> = self
            .list(&prefix, false)
            .await?
            .into_iter()
            .filter(|key| key.ends_with(".ndjson.gz"))
            .map(|key| key.strip_prefix(&strip).unwrap_or(&key).to_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, ArchiveError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| read_failed(key, e))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| read_failed(key, e))?;
        Ok(body.into_bytes().to_vec())
    }
}
