//! The chain follower over the node's protocols (ZeroMQ event subscription and
//! REST blocks), served from recorded blocks: it indexes from genesis, and
//! after the API was down while blocks were committed it resubscribes with
//! `last_known_block_ids` and catches up.
mod support;

use std::time::Duration;

use coldchain_api::{Api, ApiConfig, ApiHandle};
use support::http::get;
use support::recorded_node::RecordedNode;
use support::scenario::{self, GTIN};
use support::Ledger;

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
async fn follower_indexes_from_genesis_and_catches_up_after_downtime() {
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
    let index_url = format!("sqlite://{}", dir.path().join("index.db").display());

    let api = start(&node, &index_url).await;
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

    let api = start(&node, &index_url).await;
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
