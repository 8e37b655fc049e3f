//! A verdict never comes silently from the past (tracker issue 16): with
//! real processes (the embedded node, the recorded node's protocols, a REST
//! proxy that breaks `/receipts`), verification answers 503
//! `cannot_verify_now` instead of a verdict while the follower is stuck on a
//! block, cannot reach the node, or the index trails the chain head; `/health`
//! and `/metrics` say so; a quiet chain stays fresh.
#[path = "support/live_node.rs"]
mod live_node;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coldchain_api::chain::ingest;
use coldchain_api::freshness::FreshnessLimits;
use coldchain_api::{Api, ApiConfig, ApiHandle};
use coldchain_processors::messages::coldchain::LotStatus;
use coldchain_processors::signing::Signer;
use live_node::{start_node, LiveNode};
use serde_json::Value;
use support::http::{get, wait_for, wait_until_fresh};
use support::recorded_node::RecordedNode;
use support::scenario::{self, GTIN, T0};
use support::Ledger;
use warp::Filter;

async fn start(
    rest_url: &str,
    component: &str,
    index_url: &str,
    limits: FreshnessLimits,
) -> ApiHandle {
    Api::start_with(
        ApiConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            rest_url: rest_url.into(),
            component: component.into(),
            index_url: index_url.into(),
            follow: true,
        },
        limits,
    )
    .await
    .expect("API starts")
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("index.db").display())
}

/// A metric's value in a Prometheus text answer.
async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Checks a 503 answer is a refusal, never a verdict, in words a pharmacist
/// understands.
fn assert_refused(status: u16, body: &Value, state: &str) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "cannot_verify_now", "{body}");
    assert!(body.get("verdict").is_none(), "{body}");
    assert_eq!(body["state"], state, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot be checked right now") && message.contains("NOT a counterfeit"),
        "{message}"
    );
    for field in [
        "lag_blocks",
        "lag_seconds",
        "index_head",
        "chain_head_num",
        "reason",
    ] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
}

/// Proxies the node's REST API; while `break_receipts` is set, `/receipts`
/// answers 200 with receipts that lack the asked ids (the shape that made
/// the follower stop at block 68 of 135 on a real network).
async fn receipts_breaking_proxy(node_rest: String, break_receipts: Arc<AtomicBool>) -> String {
    let client = reqwest::Client::new();
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let routes = warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::body::bytes())
        .then(move |method: warp::http::Method, path: warp::path::FullPath, query: String, body: Bytes| {
            let (client, node_rest, broken) =
                (client.clone(), node_rest.clone(), break_receipts.load(Ordering::Relaxed));
            async move {
                if broken && path.as_str() == "/receipts" {
                    let body = r#"{"data":[{"receipt":"not the asked transaction","state_changes":[]}]}"#;
                    return warp::http::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Bytes::from(body))
                        .unwrap_or_default();
                }
                let url = if query.is_empty() {
                    format!("{node_rest}{}", path.as_str())
                } else {
                    format!("{node_rest}{}?{query}", path.as_str())
                };
                let forwarded = client
                    .request(method, url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match forwarded {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        let bytes = answer.bytes().await.unwrap_or_default();
                        warp::http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(bytes)
                            .unwrap_or_default()
                    }
                    Err(_) => warp::http::Response::builder()
                        .status(502)
                        .body(Bytes::new())
                        .unwrap_or_default(),
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    url
}

/// The stuck follower: a block of two readings transactions of one shipment
/// (both declare the shipment's addresses, so the follower needs receipts)
/// whose receipts it cannot read. After 3 failures in a row the alarm is up;
/// verification refuses — also for a lot recalled after the stuck block,
/// which must never get its old "authentic" verdict — until the receipts
/// are readable again and the follower catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_follower_refuses_verdicts_until_the_block_is_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = Signer::generate();
    let node = start_node(&dir.path().join("node"), &admin);
    let mut live = LiveNode {
        rest: node.rest_url(),
        admin,
    };
    let parties = tokio::task::block_in_place(|| {
        let parties = scenario::register(&mut live);
        scenario::ship_to_carrier(&mut live, &parties, "SH-COLD", "L-OK", "D1", T0 + 100);
        parties
    });
    let broken = Arc::new(AtomicBool::new(false));
    let proxy = receipts_breaking_proxy(node.rest_url(), Arc::clone(&broken)).await;
    let api = start(
        &proxy,
        node.component_endpoint(),
        &sqlite(&dir),
        FreshnessLimits::default(),
    )
    .await;
    let base = api.url();
    wait_until_fresh(&base, 30).await;
    let (status, body) = get(&base, &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("authentic_in_spec")),
        "{body}"
    );
    assert_eq!(
        metric(&base, "coldchain_api_follower_stuck").await,
        Some(0.0)
    );

    broken.store(true, Ordering::Relaxed);
    let stuck_block = tokio::task::block_in_place(|| {
        let ids = live
            .submit_ids(vec![
                support::readings(
                    &parties.gateway,
                    "carrier",
                    "D1",
                    "SH-COLD",
                    &[(1, T0 + 200, 500)],
                ),
                support::readings(
                    &parties.gateway,
                    "carrier",
                    "D1",
                    "SH-COLD",
                    &[(2, T0 + 800, 510)],
                ),
            ])
            .expect("two readings transactions in one batch");
        scenario::change_status(
            &mut live,
            &parties.maker,
            "L-OK",
            LotStatus::RECALLED,
            "sterility",
            T0 + 900,
        );
        ids
    });
    assert_eq!(stuck_block.len(), 2);

    let (_, health) = wait_for(&base, "/health", 30, |status, body| {
        status == 503 && body["status"] == "stuck"
    })
    .await;
    let stuck = &health["stuck_block"];
    assert!(stuck["failures"].as_u64().unwrap_or(0) >= 3, "{health}");
    assert!(
        stuck["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no receipt"),
        "{health}"
    );
    let stuck_num = stuck["block_num"].as_u64().expect("block number");
    assert_eq!(
        health["index_head"].as_u64(),
        Some(stuck_num - 1),
        "{health}"
    );
    // The recall after the stuck block: never the old verdict.
    for path in [
        format!("/01/{GTIN}/10/L-OK"),
        format!("/api/v1/verify?gtin={GTIN}&lot=L-OK"),
        format!("/01/{GTIN}/10/L-OK/21/L-OK-S1"),
    ] {
        let (status, body) = get(&base, &path).await;
        assert_refused(status, &body, "stuck");
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(&stuck_num.to_string()),
            "{body}"
        );
    }
    assert_eq!(
        metric(&base, "coldchain_api_follower_stuck").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&base, "coldchain_api_follower_stuck_block").await,
        Some(stuck_num as f64)
    );
    assert!(metric(&base, "coldchain_api_follower_failures_total").await >= Some(3.0));
    assert!(metric(&base, "coldchain_api_verify_refused_total").await >= Some(3.0));
    assert_eq!(metric(&base, "coldchain_api_fresh").await, Some(0.0));
    let (_, status) = get(&base, "/api/v1/status").await;
    assert_eq!(status["fresh"], false, "{status}");
    assert!(
        status["stale_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "{status}"
    );

    // Receipts readable again: the block is indexed, the alarm clears, and
    // the lot's verdict is the recall.
    broken.store(false, Ordering::Relaxed);
    wait_until_fresh(&base, 30).await;
    let (status, body) = get(&base, &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("recalled")),
        "{body}"
    );
    assert_eq!(body["index_lag_blocks"], 0, "{body}");
    assert_eq!(
        metric(&base, "coldchain_api_follower_stuck").await,
        Some(0.0)
    );
    let (_, health) = get(&base, "/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["stuck_block"].is_null(), "{health}");
    api.stop().await;
}

/// Nothing listens at the REST URL or the component endpoint: the index
/// holds an old copy of the chain, but verification refuses instead of
/// answering from it (and never says "unknown").
#[tokio::test]
async fn an_unreachable_node_refuses_verdicts_from_an_old_index() {
    let mut ledger = Ledger::new();
    scenario::full_story(&mut ledger);
    let dir = tempfile::tempdir().expect("tempdir");
    let index = coldchain_api::index::open(&sqlite(&dir))
        .await
        .expect("index");
    let lookup = ledger.lookup();
    for block in &ledger.blocks {
        ingest(index.as_ref(), &lookup, block.clone())
            .await
            .expect("ingested");
    }
    drop(index);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let api = start(
        &format!("http://127.0.0.1:{closed}"),
        &format!("tcp://127.0.0.1:{closed}"),
        &sqlite(&dir),
        FreshnessLimits::default(),
    )
    .await;
    let base = api.url();
    for path in [
        format!("/01/{GTIN}/10/L-OK"),
        format!("/01/{GTIN}/10/L-NOT-ON-THE-LEDGER"),
        format!("/api/v1/verify?gtin={GTIN}&serial=L-OK-S1"),
    ] {
        let (status, body) = get(&base, &path).await;
        assert_refused(status, &body, "no_contact");
        assert_eq!(body["index_head"], ledger.head().block_num, "{body}");
    }
    let (status, health) = get(&base, "/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (503, Some("no_contact")),
        "{health}"
    );
    assert_eq!(
        metric(&base, "coldchain_api_follower_connected").await,
        Some(0.0)
    );
    // Bad input is still the caller's mistake, not a refusal.
    let (status, body) = get(&base, "/api/v1/verify?gtin=123").await;
    assert_eq!(status, 400, "{body}");
    api.stop().await;
}

fn publish_from(node: &RecordedNode, ledger: &Ledger, from: usize) {
    for (update, txns) in ledger.blocks[from..]
        .iter()
        .zip(&ledger.transactions[from..])
    {
        node.publish(update.clone(), txns.clone());
    }
}

/// `count` blocks of one SH-COLD reading each, sequences from `first`.
fn record_blocks(ledger: &mut Ledger, parties: &scenario::Parties, first: u64, count: u64) {
    for sequence in first..first + count {
        scenario::record(
            ledger,
            parties,
            "D1",
            "SH-COLD",
            sequence,
            T0 + 200 + 600 * sequence,
            &[500],
        );
    }
}

/// Lag: the node serves a chain head the follower is not told about. Five
/// blocks behind (more than max_lag_blocks 3) refuses at once; one block
/// behind refuses once it has been missing longer than max_lag_seconds; level
/// answers; and a quiet chain stays fresh however long no block comes.
#[tokio::test]
async fn an_index_behind_the_chain_head_refuses_and_a_quiet_chain_stays_fresh() {
    let node = RecordedNode::start().await;
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(&mut ledger, &parties, "SH-COLD", "L-OK", "D1", T0 + 100);
    publish_from(&node, &ledger, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = FreshnessLimits {
        max_lag_blocks: 3,
        max_lag: Duration::from_secs(3),
    };
    let api = start(&node.rest_url, &node.component, &sqlite(&dir), limits).await;
    let base = api.url();
    let verify = format!("/01/{GTIN}/10/L-OK");
    wait_until_fresh(&base, 15).await;
    let (status, body) = get(&base, &verify).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("authentic_in_spec")),
        "{body}"
    );

    // Five blocks the follower is not told about; its head poll sees them.
    node.withhold_events();
    let seen = ledger.blocks.len();
    record_blocks(&mut ledger, &parties, 1, 5);
    publish_from(&node, &ledger, seen);
    let (_, health) = wait_for(&base, "/health", 15, |status, body| {
        status == 503 && body["lag_blocks"] == 5
    })
    .await;
    assert_eq!(health["status"], "behind", "{health}");
    let (status, body) = get(&base, &verify).await;
    assert_refused(status, &body, "behind");
    assert_eq!(body["lag_blocks"], 5, "{body}");
    assert_eq!(
        metric(&base, "coldchain_api_index_lag_blocks").await,
        Some(5.0)
    );

    // Level again: verdicts.
    node.release_events();
    wait_until_fresh(&base, 15).await;
    let (status, body) = get(&base, &verify).await;
    assert_eq!(
        (status, body["verdict"].as_str()),
        (200, Some("authentic_in_spec")),
        "{body}"
    );

    // A quiet chain: no block for longer than max_lag_seconds, still fresh.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, health) = get(&base, "/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (
            health["lag_blocks"].as_u64(),
            health["lag_seconds"].as_f64()
        ),
        (Some(0), Some(0.0)),
        "{health}"
    );
    let (status, body) = get(&base, &verify).await;
    assert_eq!(status, 200, "{body}");

    // One block behind (within max_lag_blocks) for longer than max_lag_seconds.
    node.withhold_events();
    let seen = ledger.blocks.len();
    record_blocks(&mut ledger, &parties, 6, 1);
    publish_from(&node, &ledger, seen);
    let (_, health) = wait_for(&base, "/health", 15, |status, body| {
        status == 503 && body["lag_blocks"] == 1
    })
    .await;
    assert_eq!(health["status"], "behind", "{health}");
    assert!(
        health["lag_seconds"].as_f64().unwrap_or(0.0) > 3.0,
        "{health}"
    );
    let (status, body) = get(&base, &verify).await;
    assert_refused(status, &body, "behind");
    node.release_events();
    wait_until_fresh(&base, 15).await;
    api.stop().await;
}
