//! A large backlog is sent in batches the REST API accepts.
//!
//! After an outage the durable queue can hold enough readings for
//! `max_transactions_per_batch` full transactions of `max_readings` readings;
//! with many devices that batch body is over the node's 10 MiB request limit,
//! which answers 413 — and a refused batch's readings become dead letters. The
//! gateway builds such a batch again with half as many transactions until its
//! body is at most 8 MiB (`submission::MAX_BATCH_BYTES`).
//!
//! The backlog here is put in the gateway's queue before it starts (as an
//! outage leaves it), the gateway posts to the real embedded node through a
//! recording proxy that forwards every request unchanged and keeps each
//! `POST /batches` body and the node's answer.
mod support;

use coldchain_gateway::protocol::{mqtt_payload, DeviceReading, Door};
use coldchain_gateway::queue::{Admission, Arrival, Queue, RawForm, Route};
use coldchain_gateway::submission::MAX_BATCH_BYTES;
use coldchain_gateway::validation::Plausibility;
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::messages::coldchain::SensorPayload;
use coldchain_processors::sensor::MAX_READINGS_PER_BATCH;
use coldchain_processors::signing::Signer;
use protobuf::Message;
use sawtooth_sdk::messages::batch::BatchList;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::chain::{recorded, shipment_of, start_node, ORG};
use support::*;
use warp::Filter;

/// Devices in the backlog; each holds four full transactions of readings, so
/// the first batch the gateway could build carries 32 transactions.
const DEVICES: usize = 8;
const READINGS_PER_DEVICE: u64 = 4 * MAX_READINGS_PER_BATCH as u64;
/// What the node refuses with 413.
const REST_LIMIT_BYTES: usize = 10 * 1024 * 1024;

/// One `POST /batches` as the proxy saw it.
struct Post {
    body: bytes::Bytes,
    status: u16,
}

/// Forwards every request to `upstream` unchanged and records each
/// `POST /batches` with the status the upstream answered.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<Post>>>) {
    let posts = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();
    let recorded_posts = posts.clone();
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: warp::http::HeaderMap,
                  body: bytes::Bytes| {
                let client = client.clone();
                let upstream = upstream.clone();
                let posts = recorded_posts.clone();
                async move {
                    let mut url = format!("{upstream}{}", path.as_str());
                    if !query.is_empty() {
                        url.push('?');
                        url.push_str(&query);
                    }
                    let mut request = client.request(method.clone(), &url).body(body.clone());
                    if let Some(kind) = headers.get("content-type") {
                        request = request.header("content-type", kind.clone());
                    }
                    let (status, kind, answer) = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let kind = response.headers().get("content-type").cloned();
                            (status, kind, response.bytes().await.unwrap_or_default())
                        }
                        Err(e) => (502, None, bytes::Bytes::from(e.to_string())),
                    };
                    if method == warp::http::Method::POST && path.as_str().ends_with("/batches") {
                        posts.lock().unwrap().push(Post { body, status });
                    }
                    let mut reply = warp::http::Response::builder().status(status);
                    if let Some(kind) = kind {
                        reply = reply.header("content-type", kind);
                    }
                    reply.body(answer.to_vec()).unwrap()
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = warp::serve(route).incoming(listener);
    tokio::spawn(async move { server.run().await });
    (url, posts)
}

fn device(d: usize) -> String {
    format!("BIG-{d}")
}

/// A reading with every optional field set, so each one takes its full room
/// in the batch (about 35 bytes).
fn reading(device: &str, sequence: u64, first_time_s: u64) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: first_time_s + sequence,
        temperature_cdeg: 450 + (sequence % 50) as i32,
        humidity_permille: Some(650),
        door: Some(Door::Closed),
        location: Some((-89_999_999, -179_999_999)),
    }
}

/// Puts `READINGS_PER_DEVICE` readings of every device in the queue at `path`,
/// as an outage of about half a day leaves them.
fn queue_backlog(path: &std::path::Path) {
    let now_ms = now_s() * 1000;
    let first_time_s = now_s() - READINGS_PER_DEVICE - 60;
    let limits = Plausibility {
        clock_skew_tolerance_s: 300,
        max_backlog_age_s: 2 * 86_400,
    };
    let mut queue = Queue::open(path).unwrap();
    for d in 0..DEVICES {
        let id = device(d);
        let arrivals: Vec<Arrival> = (1..=READINGS_PER_DEVICE)
            .collect::<Vec<_>>()
            .chunks(1_000)
            .map(|sequences| {
                let readings: Vec<DeviceReading> = sequences
                    .iter()
                    .map(|s| reading(&id, *s, first_time_s))
                    .collect();
                let raw = mqtt_payload::encode_binary(&readings);
                Arrival {
                    source: format!("mqtt:backlog/{ORG}/{id}/readings"),
                    size: raw.len() as u64,
                    raw,
                    form: RawForm::MqttPayload,
                    outcome: Ok((
                        readings,
                        Route {
                            org: ORG.into(),
                            shipment: shipment_of(&id),
                            range: None,
                        },
                    )),
                }
            })
            .collect();
        for admission in queue.admit(&arrivals, now_ms, limits, 1 << 34).unwrap() {
            assert!(
                matches!(admission, Admission::Queued { skipped: None, .. }),
                "backlog not queued: {admission:?}"
            );
        }
    }
    let stats = queue.stats(now_ms).unwrap();
    assert_eq!(stats.queued, DEVICES as u64 * READINGS_PER_DEVICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_too_large_for_one_request_is_committed_in_batches_under_8_mib() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let key = dir.path().join("gw.priv");
    std::fs::write(&key, signer.private_hex()).unwrap();
    let names: Vec<String> = (0..DEVICES).map(device).collect();
    let devices: Vec<&str> = names.iter().map(String::as_str).collect();
    let node = start_node(&dir.path().join("node"), 0, &devices, signer.public_key()).await;
    let (proxy_url, posts) = recording_proxy(node.rest_url()).await;
    let queue_path = dir.path().join("q.sqlite");
    queue_backlog(&queue_path);

    // The default max_transactions_per_batch (50) lets all 32 transactions
    // into one batch; full transactions of the processor's largest size.
    let text = format!(
        "key_file = {key:?}\nrest_url = {proxy_url:?}\nqueue_path = {queue_path:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = {MAX_READINGS_PER_BATCH}\nmax_age_ms = 200\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 50\nbackoff_max_ms = 500\nstatus_wait_s = 1\n"
    );
    let config = GatewayConfig::from_toml(&text).unwrap();
    assert!(
        DEVICES * 4 <= config.batching.max_transactions_per_batch,
        "the test needs every device's transactions to fit one batch by count"
    );
    let gateway = Gateway::start(config).await.unwrap();

    let expected = DEVICES as u64 * READINGS_PER_DEVICE;
    let settled = eventually(90, || {
        gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight + s.dead_letters)
            .ok()
            == Some(0)
            || gateway
                .queue_stats()
                .map(|s| s.dead_letters > 0)
                .unwrap_or(false)
    })
    .await;
    let stats = gateway.queue_stats().unwrap();
    gateway.stop().await;
    let dead = Queue::open(&queue_path)
        .unwrap()
        .dead_letters(None, 5)
        .unwrap();
    let posts = std::mem::take(&mut *posts.lock().unwrap());
    let answers: Vec<(usize, u16)> = posts.iter().map(|p| (p.body.len(), p.status)).collect();
    assert!(
        dead.is_empty(),
        "readings were dead-lettered: {:?}; posts (bytes, status): {answers:?}",
        dead.iter()
            .map(|d| (
                d.reason.as_str(),
                d.detail.chars().take(200).collect::<String>()
            ))
            .collect::<Vec<_>>()
    );
    assert!(settled, "queue not drained: {stats:?}; posts: {answers:?}");
    assert_eq!(
        (stats.queued, stats.in_flight, stats.dead_letters),
        (0, 0, 0)
    );

    // Every batch the gateway posted was accepted and under the limit.
    for post in &posts {
        assert_eq!(post.status, 202, "posts (bytes, status): {answers:?}");
        assert!(
            post.body.len() <= MAX_BATCH_BYTES,
            "a batch body of {} bytes (limit {MAX_BATCH_BYTES}); posts: {answers:?}",
            post.body.len()
        );
    }
    // The backlog was more than one request could carry.
    let posted_bytes: usize = posts.iter().map(|p| p.body.len()).sum();
    assert!(
        posted_bytes > REST_LIMIT_BYTES,
        "backlog of {posted_bytes} bytes does not exceed the REST limit; the test proves nothing"
    );

    // Across distinct batches, every reading was sent exactly once, in order.
    let mut sent: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut batch_ids = std::collections::BTreeSet::new();
    for post in &posts {
        let list = BatchList::parse_from_bytes(&post.body).unwrap();
        for batch in list.get_batches() {
            if !batch_ids.insert(batch.get_header_signature().to_string()) {
                continue; // the same batch re-sent (same bytes, same id)
            }
            for transaction in batch.get_transactions() {
                let payload = SensorPayload::parse_from_bytes(transaction.get_payload()).unwrap();
                let record = payload.get_record_readings();
                sent.entry(record.get_device_id().to_string())
                    .or_default()
                    .extend(record.get_readings().iter().map(|r| r.get_sequence()));
            }
        }
    }
    for name in &names {
        assert_eq!(
            sent.get(name).map(Vec::as_slice),
            Some((1..=READINGS_PER_DEVICE).collect::<Vec<_>>().as_slice()),
            "readings of {name} sent"
        );
    }

    // And the ledger recorded each one once: last sequence and the shipment's
    // thermal reading count both equal the backlog.
    for name in &names {
        assert_eq!(
            recorded(&node.rest_url(), name).await,
            (READINGS_PER_DEVICE, READINGS_PER_DEVICE),
            "{name}: (last sequence, thermal readings) on the ledger"
        );
    }
    assert_eq!(sent.values().map(Vec::len).sum::<usize>() as u64, expected);
    tokio::task::spawn_blocking(move || node.shutdown())
        .await
        .unwrap();
}
