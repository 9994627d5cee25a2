//! The two ports of the idempotency stores, claims (`ClaimStore`) and versioned state
//! (`StateStore`), each keep one contract in every adapter: in memory, in SQLite, and in
//! DynamoDB through moto.

use okr_aws::dynamodb::DynamoDbIdempotencyStore;
use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_webhooks_tests::{Moto, claim_store_contract, idempotency_table, state_store_contract};

#[tokio::test]
async fn in_memory() {
    let store = MemoryIdempotencyStore::default();
    claim_store_contract(&store).await;
    state_store_contract(&store).await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idempotency.sqlite");
    let store = SqliteIdempotencyStore::open(&path).unwrap();
    claim_store_contract(&store).await;
    state_store_contract(&store).await;
    drop(store);
    // Records survive a reopen (a restart of `serve`).
    let store = SqliteIdempotencyStore::open(&path).unwrap();
    let now = time::OffsetDateTime::now_utc();
    use okr_pipeline::idempotency::{Claim, ClaimStore};
    store
        .complete("evt_kept", now, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    drop(store);
    let reopened = SqliteIdempotencyStore::open(&path).unwrap();
    assert_eq!(
        reopened
            .begin("evt_kept", now, std::time::Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Completed
    );
}

#[tokio::test]
async fn dynamodb_through_moto() {
    let moto = Moto::start();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let table = idempotency_table(&client).await;
    let store = DynamoDbIdempotencyStore::new(client, table);
    claim_store_contract(&store).await;
    state_store_contract(&store).await;
}

#[tokio::test]
async fn sqlite_after_a_crash_drops_unstarted_claims_and_presumes_sending_ones_done() {
    use okr_pipeline::idempotency::{Claim, ClaimStore};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteIdempotencyStore::open(&dir.path().join("i.sqlite")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let hold = std::time::Duration::from_secs(60);
    let Claim::Proceed(_) = store.begin("not-started", now, hold).await.unwrap() else {
        panic!()
    };
    let Claim::Proceed(token) = store.begin("in-flight", now, hold).await.unwrap() else {
        panic!()
    };
    store.sending("in-flight", &token, now, hold).await.unwrap();
    assert_eq!(
        store
            .recover_after_crash(std::time::Duration::from_secs(3600))
            .await
            .unwrap(),
        (1, vec!["in-flight".to_owned()])
    );
    assert!(matches!(
        store.begin("not-started", now, hold).await.unwrap(),
        Claim::Proceed(_)
    ));
    assert_eq!(
        store.begin("in-flight", now, hold).await.unwrap(),
        Claim::Completed
    );
}
