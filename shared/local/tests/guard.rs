//! The idempotency guard's contract, once, against the memory and SQLite stores: every
//! consumer's side effects go through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use okr_local::sqlite_store::SqliteIdempotencyStore;
use okr_pipeline::idempotency::IdempotencyStore;
use okr_pipeline::idempotency::guard::{Claimed, Guard, Held, Ran, SENDS_NOT_RECORDED};
use okr_pipeline::idempotency::memory::MemoryIdempotencyStore;
use okr_pipeline::metrics::{MemoryMetrics, NoMetrics};
use tokio::time::Instant;

const KEEP: Duration = Duration::from_secs(3600);

fn guard(store: Arc<dyn IdempotencyStore>) -> Guard {
    Guard::new(store, KEEP, "test", Arc::new(NoMetrics)).with_min_hold(Duration::from_secs(300))
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

async fn held(guard: &Guard, key: &str) -> Held {
    match guard.claim(key.to_owned(), "evt_1", deadline()).await {
        Claimed::Held(held) => held,
        other => panic!("{key}: expected to hold it, got {other:?}"),
    }
}

async fn claim(guard: &Guard, key: &str) -> &'static str {
    match guard.claim(key.to_owned(), "evt_1", deadline()).await {
        Claimed::Held(_) => "held",
        Claimed::Done => "done",
        Claimed::Busy => "busy",
        Claimed::Failed(_) => "failed",
    }
}

/// Claimed, in progress, completed, released after a failure, and not run without time.
async fn contract(store: Arc<dyn IdempotencyStore>) {
    let guard = guard(store);
    let runs = AtomicUsize::new(0);
    let side_effect = |ok: bool| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            if ok {
                Ok(())
            } else {
                Err("the service is down")
            }
        }
    };

    // Claimed: a second claim on the key waits.
    let first = [held(&guard, "k:ok").await];
    assert_eq!(claim(&guard, "k:ok").await, "busy");
    // Completed: the side effect ran once, and later claims skip it.
    let ran = guard
        .run(&first, Duration::ZERO, deadline(), || side_effect(true))
        .await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    assert_eq!(claim(&guard, "k:ok").await, "done");

    // Released after a failure: the next claim proceeds.
    let failing = [held(&guard, "k:fails").await];
    let ran = guard
        .run(&failing, Duration::ZERO, deadline(), || side_effect(false))
        .await;
    assert!(matches!(ran, Ran::Failed("the service is down")), "{ran:?}");
    assert_eq!(claim(&guard, "k:fails").await, "held");

    // Without time for the marks, the side effect and the records, nothing runs and the
    // claim is released.
    let late = [held(&guard, "k:late").await];
    let soon = Instant::now() + Duration::from_secs(2);
    let ran = guard
        .run(&late, Duration::ZERO, soon, || side_effect(true))
        .await;
    assert!(matches!(ran, Ran::NoTime), "{ran:?}");
    assert_eq!(claim(&guard, "k:late").await, "held");

    // One side effect for several claims (a digest) completes them all.
    let group = [held(&guard, "k:a").await, held(&guard, "k:b").await];
    let ran = guard
        .run(&group, Duration::ZERO, deadline(), || side_effect(true))
        .await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    assert_eq!(claim(&guard, "k:a").await, "done");
    assert_eq!(claim(&guard, "k:b").await, "done");

    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "the side effect ran only when it should"
    );
}

/// A side effect that started and never ended (the process died mid-send): its claim is
/// kept as sending, so no other delivery repeats it.
async fn crash_while_sending(guard: Guard) {
    let claims = [held(&guard, "k:crash").await];
    let (started, is_started) = tokio::sync::oneshot::channel::<()>();
    let sending = tokio::spawn(async move {
        guard
            .run(&claims, Duration::ZERO, deadline(), || async move {
                let _ = started.send(());
                std::future::pending::<Result<(), &str>>().await
            })
            .await
    });
    is_started.await.unwrap();
    sending.abort();
    let _ = sending.await;
}

#[tokio::test]
async fn the_guard_keeps_its_contract_in_memory() {
    contract(Arc::new(MemoryIdempotencyStore::default())).await;
    let store: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::default());
    crash_while_sending(guard(store.clone())).await;
    assert_eq!(claim(&guard(store), "k:crash").await, "busy");
}

#[tokio::test]
async fn the_guard_keeps_its_contract_in_sqlite_and_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idempotency.sqlite");
    contract(Arc::new(SqliteIdempotencyStore::open(&path).unwrap())).await;

    let store = Arc::new(SqliteIdempotencyStore::open(&path).unwrap());
    crash_while_sending(guard(store.clone())).await;
    assert_eq!(claim(&guard(store.clone()), "k:crash").await, "busy");
    // A restart presumes it sent (it may have reached the service), so it is not repeated.
    drop(store);
    let restarted = Arc::new(SqliteIdempotencyStore::open(&path).unwrap());
    let (_, presumed) = restarted.recover_after_crash(KEEP).await.unwrap();
    assert_eq!(presumed, vec!["k:crash".to_owned()]);
    assert_eq!(claim(&guard(restarted), "k:crash").await, "done");
}

#[tokio::test]
async fn a_side_effect_that_cannot_be_recorded_is_acknowledged_and_counted() {
    let store = Arc::new(okr_webhooks_tests::faulty::Faulty {
        fail_completes: true,
        ..Default::default()
    });
    let metrics = Arc::new(MemoryMetrics::default());
    let guard = Guard::new(store, KEEP, "test", metrics.clone());
    let claims = [held(&guard, "k:unrecorded").await];
    let ran = guard
        .run(&claims, Duration::ZERO, deadline(), || async {
            Ok::<(), ()>(())
        })
        .await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    assert_eq!(metrics.counts(), vec![("test", SENDS_NOT_RECORDED)]);
    // The claim, marked sending, still keeps another delivery from repeating it.
    assert_eq!(claim(&guard, "k:unrecorded").await, "busy");
}

/// A batch's claims are one transaction in SQLite: claimed together, and when the store
/// refuses the transaction (here a trigger refusing one key of five), no claim of the
/// batch is held, so every record is retried at once rather than waiting out a hold.
#[tokio::test]
async fn a_batch_is_claimed_in_one_transaction_and_a_refused_one_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idempotency.sqlite");
    let store = Arc::new(SqliteIdempotencyStore::open(&path).unwrap());
    let guard = guard(store);
    let batch = |keys: &[&str]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| ((*k).to_owned(), format!("evt_{k}")))
            .collect()
    };
    let kinds = |claims: &[Claimed]| -> Vec<&'static str> {
        claims
            .iter()
            .map(|c| match c {
                Claimed::Held(_) => "held",
                Claimed::Done => "done",
                Claimed::Busy => "busy",
                Claimed::Failed(_) => "failed",
            })
            .collect()
    };

    // One done before, one held by another delivery, three new: answered in order.
    let done = [held(&guard, "b:1").await];
    let ran = guard
        .run(&done, Duration::ZERO, deadline(), || async {
            Ok::<(), ()>(())
        })
        .await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    let _other = held(&guard, "b:2").await;
    let claims = guard
        .claim_all(batch(&["b:1", "b:2", "b:3", "b:4", "b:5"]), deadline())
        .await;
    assert_eq!(kinds(&claims), ["done", "busy", "held", "held", "held"]);

    // The store refuses the transaction at its fourth key.
    let side = rusqlite::Connection::open(&path).unwrap();
    side.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON idempotency WHEN NEW.key = 'c:4'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let keys = ["c:1", "c:2", "c:3", "c:4", "c:5"];
    let claims = guard.claim_all(batch(&keys), deadline()).await;
    assert_eq!(kinds(&claims), ["failed"; 5]);
    side.execute_batch("DROP TRIGGER refuse").unwrap();
    // Nothing of it was kept: each key is free to claim now, none waits out a hold.
    let claims = guard.claim_all(batch(&keys), deadline()).await;
    assert_eq!(kinds(&claims), ["held"; 5]);
}

/// The same through the default `begin_all` (one claim after another, as the memory
/// store and any store without transactions): a failure part-way gives back the claims
/// already taken.
#[tokio::test]
async fn a_batch_failing_part_way_gives_back_what_it_took() {
    let store = Arc::new(okr_webhooks_tests::faulty::Faulty {
        fail_begin_of: Some("d:3".to_owned()),
        ..Default::default()
    });
    let guard = guard(store.clone());
    let wanted = ["d:1", "d:2", "d:3", "d:4"]
        .iter()
        .map(|k| ((*k).to_owned(), "evt_1".to_owned()))
        .collect();
    let claims = guard.claim_all(wanted, deadline()).await;
    assert!(
        claims.iter().all(|c| matches!(c, Claimed::Failed(_))),
        "{claims:?}"
    );
    for key in ["d:1", "d:2", "d:4"] {
        assert_eq!(claim(&guard, key).await, "held", "{key} was given back");
    }
}

/// Marks made at the same moment share commits; each answer tells the truth about its
/// own mark. Forty claims are marked side by side, twice: first all of them, one with a
/// token that is not its claim's (which changes nothing, as a mark alone); then with the
/// database refusing one mark, and so whichever marks shared its commit. After a crash,
/// exactly the marks answered Ok are sending (presumed done); the others were not marked.
#[tokio::test]
async fn marks_made_together_are_each_answered_as_committed() {
    use okr_pipeline::idempotency::{Claim, ClaimStore, ClaimToken};
    use time::OffsetDateTime;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idempotency.sqlite");
    let store = Arc::new(SqliteIdempotencyStore::open(&path).unwrap());
    let hold = Duration::from_secs(300);
    // Claim `prefix:00`..`prefix:39` and mark them all at once; the keys answered Ok.
    let mark_all = |prefix: &'static str| {
        let store = store.clone();
        async move {
            let keys: Vec<String> = (0..40).map(|i| format!("{prefix}:{i:02}")).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let claims = store
                .begin_all(&refs, OffsetDateTime::now_utc(), hold)
                .await
                .unwrap();
            let mut marking = Vec::new();
            for (key, claim) in keys.into_iter().zip(claims) {
                let Claim::Proceed(token) = claim else {
                    panic!("{key}: not claimed");
                };
                let token = if key.ends_with(":13") {
                    ClaimToken::random()
                } else {
                    token
                };
                let store = store.clone();
                marking.push(tokio::spawn(async move {
                    let marked = store
                        .sending(&key, &token, OffsetDateTime::now_utc(), hold)
                        .await;
                    (key, marked.is_ok())
                }));
            }
            let mut ok = Vec::new();
            for mark in marking {
                let (key, answered_ok) = mark.await.unwrap();
                if answered_ok {
                    ok.push(key);
                }
            }
            ok
        }
    };

    let first = mark_all("a").await;
    assert_eq!(first.len(), 40, "every mark answers Ok: {first:?}");
    let side = rusqlite::Connection::open(&path).unwrap();
    side.execute_batch(
        "CREATE TRIGGER refuse BEFORE UPDATE ON idempotency WHEN NEW.key = 'r:07'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    let second = mark_all("r").await;
    assert!(
        !second.contains(&"r:07".to_owned()),
        "the refused mark answered Ok"
    );
    side.execute_batch("DROP TRIGGER refuse").unwrap();

    drop(store);
    let restarted = SqliteIdempotencyStore::open(&path).unwrap();
    let (dropped, presumed) = restarted.recover_after_crash(KEEP).await.unwrap();
    let mut expected: Vec<String> = first
        .into_iter()
        .chain(second)
        .filter(|k| !k.ends_with(":13"))
        .collect();
    expected.sort();
    assert_eq!(presumed, expected);
    assert_eq!(dropped + presumed.len(), 80);
}
