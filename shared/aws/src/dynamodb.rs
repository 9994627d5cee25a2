//! Idempotency records in DynamoDB: conditional writes make the claim atomic, and the
//! table's TTL attribute `expires_at` removes old records.
//!
//! Table: partition key `id` (string); attributes `status`, `expires_at` (Unix seconds,
//! the TTL attribute) and `token` (who holds an in-progress claim). State records share
//! the table, with `version` (a number) and `value` (a string) instead of `status`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use okr_pipeline::idempotency::{
    COMPLETED, Claim, ClaimStore, ClaimToken, IN_PROGRESS, IdempotencyError, SENDING, StateStore,
    StateWrite, Versioned, claim_of, expiry,
};

/// Records in the table `table`.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoDbIdempotencyStore {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbIdempotencyStore {
            client,
            table: table.into(),
        }
    }

    /// The item at `key`, if it has not expired by `now`.
    async fn live_item(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<HashMap<String, AttributeValue>>, IdempotencyError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(wrap)?
            .item;
        Ok(item.filter(|item| {
            item.get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|expires| expires > now)
        }))
    }

    async fn status(&self, key: &str, now: i64) -> Result<Option<String>, IdempotencyError> {
        Ok(self
            .live_item(key, now)
            .await?
            .and_then(|item| item.get("status").and_then(|v| v.as_s().ok()).cloned()))
    }
}

/// Whether a conditional write happened: false when its condition did not hold.
fn written<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    condition_failed: fn(&E) -> bool,
) -> Result<bool, IdempotencyError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(condition_failed) => Ok(false),
        Err(error) => Err(wrap(error)),
    }
}

fn wrap(error: impl std::error::Error + Send + Sync + 'static) -> IdempotencyError {
    IdempotencyError(Box::new(error))
}

#[async_trait]
impl ClaimStore for DynamoDbIdempotencyStore {
    async fn begin(
        &self,
        key: &str,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let now_secs = now.unix_timestamp();
        // Twice at most: a record that expires between the failed put and the read.
        for _ in 0..2 {
            let token = ClaimToken::random();
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("id", AttributeValue::S(key.to_owned()))
                .item("status", AttributeValue::S(IN_PROGRESS.to_owned()))
                .item(
                    "expires_at",
                    AttributeValue::N(expiry(now, hold).to_string()),
                )
                .item("token", AttributeValue::S(token.as_str().to_owned()))
                .condition_expression("attribute_not_exists(#id) OR #expires <= :now")
                .expression_attribute_names("#id", "id")
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(":now", AttributeValue::N(now_secs.to_string()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Claim::Proceed(token)),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    if let Some(status) = self.status(key, now_secs).await? {
                        return Ok(claim_of(&status));
                    }
                }
                Err(error) => return Err(wrap(error)),
            }
        }
        Ok(Claim::InProgress)
    }
    /// The batch's conditional puts side by side (one round trip's wait, not ten), each
    /// keeping its own condition; when any fails, the claims the others took are given
    /// back, so every record of the batch is retried.
    async fn begin_all(
        &self,
        keys: &[&str],
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<Vec<Claim>, IdempotencyError> {
        let answers =
            futures::future::join_all(keys.iter().map(|key| self.begin(key, now, hold))).await;
        if answers.iter().any(Result::is_err) {
            let taken: Vec<Claim> = answers
                .iter()
                .map(|answer| answer.as_ref().map_or(Claim::InProgress, Claim::clone))
                .collect();
            okr_pipeline::idempotency::give_back(self, keys, &taken).await;
        }
        answers.into_iter().collect()
    }
    async fn complete(
        &self,
        key: &str,
        now: OffsetDateTime,
        keep: Duration,
    ) -> Result<(), IdempotencyError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(key.to_owned()))
            .item("status", AttributeValue::S(COMPLETED.to_owned()))
            .item(
                "expires_at",
                AttributeValue::N(expiry(now, keep).to_string()),
            )
            .send()
            .await
            .map(drop)
            .map_err(wrap)
    }
    async fn sending(
        &self,
        key: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        hold: Duration,
    ) -> Result<(), IdempotencyError> {
        // Callers hold a sending claim at least as long as they claimed it, so setting
        // the expiry never shortens it (an update expression has no max).
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .update_expression("SET #status = :sending, #expires = :until")
            .condition_expression("#token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_values(":sending", AttributeValue::S(SENDING.to_owned()))
            .expression_attribute_values(":token", AttributeValue::S(token.as_str().to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(expiry(now, hold).to_string()))
            .send()
            .await;
        // Not written: the claim lapsed and someone else holds it; nothing to mark.
        written(
            updated,
            UpdateItemError::is_conditional_check_failed_exception,
        )
        .map(|_| ())
    }
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), IdempotencyError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .condition_expression(
                "(#status = :in_progress OR #status = :sending) AND #token = :token",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":token", AttributeValue::S(token.as_str().to_owned()))
            .expression_attribute_values(":sending", AttributeValue::S(SENDING.to_owned()))
            .send()
            .await;
        // Not deleted: completed, gone, or someone else's claim; nothing to release.
        written(
            deleted,
            DeleteItemError::is_conditional_check_failed_exception,
        )
        .map(|_| ())
    }
    async fn is_completed(&self, key: &str, now: OffsetDateTime) -> Result<bool, IdempotencyError> {
        let status = self.status(key, now.unix_timestamp()).await?;
        Ok(status.as_deref() == Some(COMPLETED))
    }
}

#[async_trait]
impl StateStore for DynamoDbIdempotencyStore {
    async fn load_state(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Versioned>, IdempotencyError> {
        let Some(item) = self.live_item(key, now.unix_timestamp()).await? else {
            return Ok(None);
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok());
        let value = item.get("value").and_then(|v| v.as_s().ok());
        match (version, value) {
            (Some(version), Some(value)) => Ok(Some(Versioned {
                version,
                value: value.clone(),
            })),
            _ => Err(IdempotencyError(
                format!("the item {key} is not a state record").into(),
            )),
        }
    }
    async fn save_state(&self, write: &StateWrite<'_>) -> Result<bool, IdempotencyError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(write.key.to_owned()))
            .item(
                "version",
                AttributeValue::N(write.expected.map_or(1, |v| v + 1).to_string()),
            )
            .item("value", AttributeValue::S(write.value.to_owned()))
            .item(
                "expires_at",
                AttributeValue::N(expiry(write.now, write.keep).to_string()),
            );
        let put = match write.expected {
            None => put
                .condition_expression("attribute_not_exists(#id) OR #expires <= :now")
                .expression_attribute_names("#id", "id")
                .expression_attribute_names("#expires", "expires_at")
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(write.now.unix_timestamp().to_string()),
                ),
            Some(version) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
        };
        written(
            put.send().await,
            PutItemError::is_conditional_check_failed_exception,
        )
    }
}

/// Every item of `table`, page after page, read strongly consistent (the read models'
/// `all`, the directory's entries).
pub async fn scan_all(
    client: &Client,
    table: &str,
) -> Result<
    Vec<HashMap<String, AttributeValue>>,
    SdkError<aws_sdk_dynamodb::operation::scan::ScanError, HttpResponse>,
> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// Send `put` only over the version read (an attribute `version`; `None`: only where
/// there is no item, by its key attribute `key`): whether it was written (false: another
/// writer got there first).
pub async fn put_over(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    read: Option<u64>,
) -> Result<bool, SdkError<PutItemError, HttpResponse>> {
    let put = match read {
        None => put
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", "key"),
        Some(version) => put
            .condition_expression("#version = :version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
    };
    match put.send().await {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}
