//! The chain follower over the node's protocols (ZeroMQ event subscription and
//! REST blocks), served from recorded blocks, on SQLite and PostgreSQL: it
//! indexes from genesis, and after the API was down while blocks were
//! committed it resubscribes with `last_known_block_ids` and catches up; forks
//! deeper than the old 20-id window, and deeper than the ids it sends, roll
//! back to the common ancestor instead of re-indexing from genesis.
mod support;

use std::time::Duration;

use coldchain_api::{Api, ApiConfig, ApiHandle};
use support::http::{get, wait_until_fresh};
use support::recorded_node::RecordedNode;
use support::scenario::{self, GTIN};
use support::{drop_postgres_schema, postgres_url, Ledger, NULL_BLOCK_ID};

async fn start(node: &RecordedNode, index_url: &str) -> ApiHandle {
    Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: node.rest_url.clone(),
        component: node.component.clone(),
        index_url: index_url.into(),
        follow: true,
    })
    .await
    .expect("API starts")
}

async fn wait_for_head(api: &ApiHandle, block_id: &str) {
    for _ in 0..200 {
        if api
            .index()
            .head()
            .await
            .expect("head")
            .is_some_and(|h| h.block_id == block_id)
        {
            // Verdicts are given once the API knows its index is current.
            wait_until_fresh(&api.url(), 15).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, status) = get(&api.url(), "/api/v1/status").await;
    panic!("index did not reach block {block_id}: {status}");
}

fn publish_from(node: &RecordedNode, ledger: &Ledger, from: usize) {
    for (update, txns) in ledger.blocks[from..]
        .iter()
        .zip(&ledger.transactions[from..])
    {
        node.publish(update.clone(), txns.clone());
    }
}

#[tokio::test]
async fn sqlite_follower_indexes_from_genesis_and_catches_up_after_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index_url = format!("sqlite://{}", dir.path().join("index.db").display());
    indexes_from_genesis_and_catches_up(&index_url).await;
}

#[tokio::test]
async fn postgres_follower_indexes_from_genesis_and_catches_up_after_downtime() {
    drop_postgres_schema("follower").await;
    indexes_from_genesis_and_catches_up(&postgres_url("follower")).await;
    drop_postgres_schema("follower").await;
}

async fn indexes_from_genesis_and_catches_up(index_url: &str) {
    let node = RecordedNode::start().await;
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-COLD",
        "L-OK",
        "D1",
        scenario::T0 + 100,
    );
    publish_from(&node, &ledger, 0);

    let api = start(&node, index_url).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    let (_, status) = get(&api.url(), "/api/v1/status").await;
    assert_eq!(status["lag_blocks"], 0, "{status}");
    assert_eq!(status["follower_connected"], true, "{status}");
    let (_, body) = get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(body["verdict"], "authentic_in_spec");
    api.stop().await;

    // Down while the chain moves on: readings, a delivery and a recall.
    let seen = ledger.blocks.len();
    scenario::record(
        &mut ledger,
        &parties,
        "D1",
        "SH-COLD",
        1,
        scenario::T0 + 200,
        &[500, 510, 520],
    );
    scenario::deliver(
        &mut ledger,
        &parties,
        "SH-COLD",
        scenario::T0 + 5_000,
        false,
    );
    scenario::change_status(
        &mut ledger,
        &parties.maker,
        "L-OK",
        coldchain_processors::messages::coldchain::LotStatus::RECALLED,
        "label error",
        scenario::T0 + 6_000,
    );
    publish_from(&node, &ledger, seen);

    let api = start(&node, index_url).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    let last_known = node
        .published
        .lock()
        .expect("lock")
        .subscriptions
        .last()
        .cloned()
        .expect("resubscribed");
    assert_eq!(
        last_known.first(),
        Some(&ledger.blocks[seen - 1].block.block_id),
        "catch-up starts from the index head"
    );
    let (_, body) = get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(body["verdict"], "recalled");
    let index = api.index();
    let rows = index
        .readings(coldchain_api::index::ReadingsQuery {
            shipment_id: "SH-COLD".into(),
            from_s: 0,
            to_s: u64::MAX >> 1,
            after: None,
            limit: 100,
        })
        .await
        .expect("readings");
    assert_eq!(rows.len(), 3, "readings came from the REST block payloads");

    // One batch holding a recall and readings: the readings transaction's
    // declared outputs cover every lot, but only the recall wrote L-RECALL.
    let seen = ledger.blocks.len();
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-2",
        "L-HOT",
        "D2",
        scenario::T0 + 6_000,
    );
    let combined = ledger.blocks.len();
    let mut change = coldchain_processors::messages::coldchain::ChangeLotStatus::new();
    let mut lot = coldchain_processors::messages::coldchain::LotRef::new();
    lot.set_gtin(GTIN.into());
    lot.set_lot("L-RECALL".into());
    change.set_lot(lot);
    change.set_status(coldchain_processors::messages::coldchain::LotStatus::RECALLED);
    change.set_reason("sterility".into());
    let points = [
        (4, scenario::T0 + 6_200, 505),
        (5, scenario::T0 + 6_800, 500),
    ];
    let block = ledger
        .commit(vec![
            support::registry(
                &parties.maker,
                scenario::T0 + 6_100,
                coldchain_processors::messages::coldchain::RegistryPayload_oneof_action::change_lot_status(change),
            ),
            support::readings(&parties.gateway, "carrier", "D2", "SH-2", &points),
        ])
        .expect("recall and readings in one block");
    let recall_id = ledger.transactions[combined][0].id.clone();
    publish_from(&node, &ledger, seen);
    wait_for_head(&api, &block.block.block_id).await;
    let (_, body) = get(
        &api.url(),
        &format!("/api/v1/verify?gtin={GTIN}&lot=L-RECALL"),
    )
    .await;
    assert_eq!(body["verdict"], "recalled", "{body}");
    assert_eq!(body["evidence"][0]["record"], "lot", "{body}");
    assert_eq!(
        body["evidence"][0]["transaction_id"],
        recall_id.as_str(),
        "{body}"
    );
    // Every change of every block is credited to the transaction that wrote it.
    for update in &ledger.blocks {
        for change in &update.changes {
            let history = index
                .record_history(&change.address)
                .await
                .expect("history");
            let version = history
                .iter()
                .find(|v| v.block_num == update.block.block_num)
                .expect("version indexed");
            assert_eq!(
                version.txn_id, change.txn_id,
                "{} in block {}",
                change.address, update.block.block_num
            );
        }
    }
    api.stop().await;
}

/// Subscriptions the node received from the `from`-th on.
fn subscriptions_since(node: &RecordedNode, from: usize) -> Vec<Vec<String>> {
    node.published.lock().expect("lock").subscriptions[from..].to_vec()
}

fn subscription_count(node: &RecordedNode) -> usize {
    node.published.lock().expect("lock").subscriptions.len()
}

/// Blocks of `ledger` above `block_num` with their transactions.
fn blocks_above(
    ledger: &Ledger,
    block_num: u64,
) -> Vec<(coldchain_api::index::BlockUpdate, Vec<support::RecordedTxn>)> {
    let from = usize::try_from(block_num).expect("small") + 1;
    ledger.blocks[from..]
        .iter()
        .cloned()
        .zip(ledger.transactions[from..].iter().cloned())
        .collect()
}

async fn readings_count(api: &ApiHandle, shipment: &str) -> usize {
    api.index()
        .readings(coldchain_api::index::ReadingsQuery {
            shipment_id: shipment.into(),
            from_s: 0,
            to_s: u64::MAX >> 1,
            after: None,
            limit: 5_000,
        })
        .await
        .expect("readings")
        .len()
}

/// `blocks` blocks of one SH-COLD reading each (sequences from 1: a fork
/// restarts them from the ancestor's state).
fn record_blocks(ledger: &mut Ledger, parties: &scenario::Parties, blocks: u64, cdeg: i32) {
    for sequence in 1..=blocks {
        scenario::record(
            ledger,
            parties,
            "D1",
            "SH-COLD",
            sequence,
            scenario::T0 + 200 + 600 * sequence,
            &[cdeg],
        );
    }
}

/// Forks through the real subscription. While the API is down the node
/// switches to a fork 30 blocks below the index head (deeper than the 20 ids
/// the follower used to send, which made the node answer UNKNOWN_BLOCK and
/// the follower wipe the index): the follower's newest-first ids include the
/// common ancestor, the node resumes after it, the index rolls back to it.
/// Then a fork 260 blocks deep (beyond the ids sent): UNKNOWN_BLOCK, the
/// follower bisects its index against the node's REST blocks, rolls back to
/// the ancestor and resubscribes from it. Neither re-indexes from genesis.
/// Last, a fork while the API follows live.
async fn follower_rolls_back_forks_to_the_common_ancestor(index_url: &str) {
    use coldchain_processors::messages::coldchain::LotStatus;
    let node = RecordedNode::start().await;
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-COLD",
        "L-OK",
        "D1",
        scenario::T0 + 100,
    );
    let ancestor = ledger.head().clone();
    record_blocks(&mut ledger, &parties, 30, 500);
    publish_from(&node, &ledger, 0);
    let api = start(&node, index_url).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    assert_eq!(readings_count(&api, "SH-COLD").await, 30);
    api.stop().await;

    // Fork 1, 30 blocks deep, while the API is down: 260 other blocks.
    ledger.fork_at(ancestor.block_num);
    record_blocks(&mut ledger, &parties, 260, 510);
    node.fork(
        ancestor.block_num,
        blocks_above(&ledger, ancestor.block_num),
    );
    let seen = subscription_count(&node);
    let api = start(&node, index_url).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    let subscriptions = subscriptions_since(&node, seen);
    assert!(
        subscriptions
            .iter()
            .all(|ids| !ids.iter().any(|id| id == NULL_BLOCK_ID)),
        "no re-index from genesis: {subscriptions:?}"
    );
    assert!(
        subscriptions[0].len() > 30 && subscriptions[0].contains(&ancestor.block_id),
        "the ids sent reach the common ancestor: {} ids",
        subscriptions[0].len()
    );
    assert_eq!(readings_count(&api, "SH-COLD").await, 260);
    let (_, status) = get(&api.url(), "/api/v1/status").await;
    assert_eq!(status["lag_blocks"], 0, "{status}");
    assert_eq!(status["lag_seconds"], 0.0, "{status}");
    api.stop().await;

    // Fork 2, 260 blocks deep (beyond the 256 ids sent), while down: the
    // recall exists only on the new fork.
    ledger.fork_at(ancestor.block_num);
    scenario::change_status(
        &mut ledger,
        &parties.maker,
        "L-OK",
        LotStatus::RECALLED,
        "label error",
        scenario::T0 + 400,
    );
    node.fork(
        ancestor.block_num,
        blocks_above(&ledger, ancestor.block_num),
    );
    let seen = subscription_count(&node);
    let api = start(&node, index_url).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    let subscriptions = subscriptions_since(&node, seen);
    assert_eq!(
        subscriptions[0].len(),
        coldchain_api::follower::CATCH_UP_IDS as usize,
        "newest ids first, as many as the follower sends"
    );
    assert!(!subscriptions[0].contains(&ancestor.block_id));
    assert_eq!(
        subscriptions.last().and_then(|ids| ids.first()),
        Some(&ancestor.block_id),
        "resubscribed from the ancestor found by bisection: {:?}",
        subscriptions.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        subscriptions
            .iter()
            .all(|ids| !ids.iter().any(|id| id == NULL_BLOCK_ID)),
        "no re-index from genesis"
    );
    assert_eq!(readings_count(&api, "SH-COLD").await, 0);
    let (_, body) = get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(body["verdict"], "recalled", "{body}");

    // Fork 3, live: the node switches back to readings instead of the recall.
    let seen = subscription_count(&node);
    ledger.fork_at(ancestor.block_num);
    record_blocks(&mut ledger, &parties, 3, 520);
    node.fork(
        ancestor.block_num,
        blocks_above(&ledger, ancestor.block_num),
    );
    wait_for_head(&api, &ledger.head().block_id).await;
    assert_eq!(readings_count(&api, "SH-COLD").await, 3);
    let (_, body) = get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(body["verdict"], "authentic_in_spec", "{body}");
    assert!(
        subscriptions_since(&node, seen)
            .iter()
            .all(|ids| !ids.iter().any(|id| id == NULL_BLOCK_ID)),
        "no re-index from genesis"
    );
    api.stop().await;
}

#[tokio::test]
async fn sqlite_follower_rolls_back_forks_to_the_common_ancestor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index_url = format!("sqlite://{}", dir.path().join("index.db").display());
    follower_rolls_back_forks_to_the_common_ancestor(&index_url).await;
}

#[tokio::test]
async fn postgres_follower_rolls_back_forks_to_the_common_ancestor() {
    drop_postgres_schema("forks").await;
    follower_rolls_back_forks_to_the_common_ancestor(&postgres_url("forks")).await;
    drop_postgres_schema("forks").await;
}

/// An index left by an older coldchain-api (one `readings` row per reading)
/// is rebuilt when the API starts: the follower re-indexes from genesis,
/// `/api/v1/status` says what happened, and the API tokens and audit log it
/// held still work.
#[tokio::test]
async fn sqlite_old_index_is_rebuilt_from_genesis_keeping_tokens_and_audit() {
    let node = RecordedNode::start().await;
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(
        &mut ledger,
        &parties,
        "SH-COLD",
        "L-OK",
        "D1",
        scenario::T0 + 100,
    );
    publish_from(&node, &ledger, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.db");
    let token = "old-token";
    let conn = rusqlite::Connection::open(&path).expect("old index");
    conn.execute_batch(&format!(
        "CREATE TABLE blocks (block_num INTEGER PRIMARY KEY, block_id TEXT NOT NULL UNIQUE,
           previous_block_id TEXT NOT NULL, state_root TEXT NOT NULL);
         INSERT INTO blocks VALUES (0, 'stale', '0000000000000000', 'r');
         CREATE TABLE readings (shipment_id TEXT NOT NULL);
         CREATE TABLE api_tokens (token_sha256 TEXT PRIMARY KEY, public_key TEXT NOT NULL,
           label TEXT NOT NULL, created_at_s INTEGER NOT NULL);
         CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at_s INTEGER NOT NULL,
           public_key TEXT NOT NULL, org_id TEXT NOT NULL, method TEXT NOT NULL,
           path TEXT NOT NULL, subject TEXT NOT NULL);
         INSERT INTO api_tokens VALUES ('{}', '{}', 'old', 1);
         INSERT INTO audit_log (at_s, public_key, org_id, method, path, subject)
           VALUES (1, '{}', 'pharmacy', 'GET', '/api/v1/lots/x/y', 'lot read last year');",
        coldchain_api::access::token_digest(token),
        parties.pharmacy.public_key(),
        parties.pharmacy.public_key(),
    ))
    .expect("old layout");
    drop(conn);

    let api = start(&node, &format!("sqlite://{}", path.display())).await;
    wait_for_head(&api, &ledger.head().block_id).await;
    let (_, status) = get(&api.url(), "/api/v1/status").await;
    let notice = status["index_rebuilt"].as_str().unwrap_or_default();
    assert!(
        notice.contains("older coldchain-api") && notice.contains("genesis"),
        "{status}"
    );
    let first = node.published.lock().expect("lock").subscriptions[0].clone();
    assert_eq!(
        first,
        vec![NULL_BLOCK_ID.to_string()],
        "re-indexed from genesis"
    );
    let (_, body) = get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(body["verdict"], "authentic_in_spec", "{body}");
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/audit", api.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let subjects: Vec<&str> = audit["entries"]
        .as_array()
        .expect("the old token still works")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert!(subjects.contains(&"lot read last year"), "{audit}");
    api.stop().await;
}
