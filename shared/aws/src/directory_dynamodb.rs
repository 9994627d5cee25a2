//! The directory in DynamoDB (the stack's `DirectoryTable`).
//!
//! Table: partition key `key` (string: `person#<endpoint>#<id>`, `link#<owner>`,
//! `erased#<hash>`); attributes `doc` (the entry as JSON) and `version` (a number: a
//! write is conditional on the version read).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::dynamodb::{put_over, scan_all};
use okr_consumers::directory::{DirectoryError, DirectoryStore, Entry, Versioned};

/// Entries in the table `table`.
#[derive(Debug, Clone)]
pub struct DynamoDbDirectory {
    client: Client,
    table: String,
}

impl DynamoDbDirectory {
    /// A store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbDirectory {
            client,
            table: table.into(),
        }
    }
}

fn wrap(error: impl std::error::Error + Send + Sync + 'static) -> DirectoryError {
    DirectoryError(Box::new(error))
}

fn entry_of(item: &HashMap<String, AttributeValue>) -> Result<Versioned, DirectoryError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| DirectoryError::new("an item without a doc"))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| DirectoryError::new("an item without a version"))?;
    Ok(Versioned {
        entry: serde_json::from_str(doc).map_err(wrap)?,
        version,
    })
}

#[async_trait]
impl DirectoryStore for DynamoDbDirectory {
    async fn entries(&self) -> Result<Vec<Versioned>, DirectoryError> {
        let items = scan_all(&self.client, &self.table).await.map_err(wrap)?;
        items.iter().map(entry_of).collect()
    }

    async fn put(&self, entry: &Entry, expected: Option<u64>) -> Result<bool, DirectoryError> {
        let doc = serde_json::to_string(entry).map_err(wrap)?;
        let version = expected.unwrap_or(0) + 1;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(entry.key()))
            .item("doc", AttributeValue::S(doc))
            .item("version", AttributeValue::N(version.to_string()));
        put_over(put, expected).await.map_err(wrap)
    }

    async fn remove(&self, key: &str) -> Result<(), DirectoryError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_owned()))
            .send()
            .await
            .map_err(wrap)?;
        Ok(())
    }
}
