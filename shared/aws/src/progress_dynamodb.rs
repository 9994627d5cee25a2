//! The read model in DynamoDB (the stack's `ProgressTable`).
//!
//! Table: partition key `key` (string, `<source>#<id>`); attributes `doc` (the record as
//! JSON), `version` (a number: a write is conditional on the version read), `written_at`
//! (Unix milliseconds) and `feed` (always `all`). The index [`BY_WRITTEN_AT`] (`feed`,
//! `written_at`) is what the dashboard polls for changes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use time::OffsetDateTime;

use crate::dynamodb::{put_over, scan_all};
use okr_consumers::progress::{ProgressError, ProgressStore, Tracked, is_tracked_kind, key, next};
use okr_core::event::Event;
use okr_core::rules::Thresholds;

/// The index on write time.
pub const BY_WRITTEN_AT: &str = "by-written-at";
/// Reads of a record before giving up on concurrent writers (the record then fails and
/// SQS retries it).
const ATTEMPTS: usize = 3;
/// How far before the cursor a poll looks again: writers' clocks differ, and the index
/// is eventually consistent. Records seen twice are told apart by their version.
const OVERLAP_MS: i64 = 10_000;

/// Records in the table `table`.
#[derive(Debug, Clone)]
pub struct DynamoDbProgressStore {
    client: Client,
    table: String,
}

fn wrap(error: impl std::error::Error + Send + Sync + 'static) -> ProgressError {
    ProgressError(Box::new(error))
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Result<Tracked, ProgressError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| ProgressError::new("an item without a doc"))?;
    serde_json::from_str(doc).map_err(wrap)
}

impl DynamoDbProgressStore {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbProgressStore {
            client,
            table: table.into(),
        }
    }

    async fn load(&self, key: &str) -> Result<Option<Tracked>, ProgressError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(wrap)?
            .item;
        item.as_ref().map(record_of).transpose()
    }

    /// Write `record` over version `read` (none: only if there is no item); whether it was.
    async fn save(&self, record: &Tracked, read: Option<u64>) -> Result<bool, ProgressError> {
        let doc = serde_json::to_string(record).map_err(wrap)?;
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(record.key()))
            .item("doc", AttributeValue::S(doc))
            .item("version", AttributeValue::N(record.version.to_string()))
            .item("written_at", AttributeValue::N(now.to_string()))
            .item("feed", AttributeValue::S("all".into()));
        put_over(put, read).await.map_err(wrap)
    }

    /// Apply one entity's events in order; the first failure fails the rest.
    async fn apply_entity(
        &self,
        key: &str,
        events: &[&Event],
        thresholds: &Thresholds,
    ) -> Vec<Result<bool, ProgressError>> {
        let mut outcomes = Vec::with_capacity(events.len());
        for (n, event) in events.iter().enumerate() {
            match self.apply_one(key, event, thresholds).await {
                Ok(changed) => outcomes.push(Ok(changed)),
                Err(error) => {
                    let text = okr_core::error_chain(&error);
                    outcomes.push(Err(error));
                    // Later events of this entity are not applied before it.
                    for _ in n + 1..events.len() {
                        outcomes.push(Err(ProgressError::new(format!(
                            "an earlier event of this entity failed: {text}"
                        ))));
                    }
                    break;
                }
            }
        }
        outcomes
    }

    async fn apply_one(
        &self,
        key: &str,
        event: &Event,
        thresholds: &Thresholds,
    ) -> Result<bool, ProgressError> {
        for _ in 0..ATTEMPTS {
            let current = self.load(key).await?;
            let Some(updated) = next(current.as_ref(), event, thresholds) else {
                return Ok(false);
            };
            if self.save(&updated, current.map(|c| c.version)).await? {
                return Ok(true);
            }
        }
        Err(ProgressError::new(
            "the record kept changing under concurrent writers; retry later",
        ))
    }
}

#[async_trait]
impl ProgressStore for DynamoDbProgressStore {
    async fn apply(
        &self,
        events: Vec<Event>,
        thresholds: &Thresholds,
    ) -> Vec<Result<bool, ProgressError>> {
        let events = &events;
        // Entities side by side, each one's events in order.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut outcomes: Vec<Option<Result<bool, ProgressError>>> =
            events.iter().map(|_| None).collect();
        for (n, event) in events.iter().enumerate() {
            match event.entity.id.as_deref() {
                Some(id) if is_tracked_kind(&event.entity.kind) => {
                    let key = key(event.endpoint(), id);
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, members)) => members.push(n),
                        None => groups.push((key, vec![n])),
                    }
                }
                _ => outcomes[n] = Some(Ok(false)),
            }
        }
        let applied = join_all(groups.iter().map(|(key, members)| {
            let group: Vec<&Event> = members.iter().map(|&n| &events[n]).collect();
            async move { self.apply_entity(key, &group, thresholds).await }
        }))
        .await;
        for ((_, members), results) in groups.iter().zip(applied) {
            for (&n, result) in members.iter().zip(results) {
                outcomes[n] = Some(result);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ok(false)))
            .collect()
    }

    async fn all(&self) -> Result<Vec<Tracked>, ProgressError> {
        let items = scan_all(&self.client, &self.table).await.map_err(wrap)?;
        let mut records = items.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(Tracked::key);
        Ok(records)
    }

    async fn changed_since(&self, cursor: i64) -> Result<(Vec<Tracked>, i64), ProgressError> {
        let mut records = Vec::new();
        let mut last = cursor;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_WRITTEN_AT)
                .key_condition_expression("feed = :all AND written_at > :after")
                .expression_attribute_values(":all", AttributeValue::S("all".into()))
                .expression_attribute_values(
                    ":after",
                    AttributeValue::N((cursor - OVERLAP_MS).max(0).to_string()),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(wrap)?;
            for item in page.items() {
                let written = item
                    .get("written_at")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(cursor);
                last = last.max(written);
                records.push(record_of(item)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok((records, last))
    }
}
