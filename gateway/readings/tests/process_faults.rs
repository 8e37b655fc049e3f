//! The fault test of issue #4 with real processes only: a private Mosquitto,
//! the embedded node and the gateway binary, each a process of its own, with
//! simulated loggers publishing over MQTT. While they stream, the gateway is
//! `kill -9`-ed and restarted, the node is `kill -9`-ed, left down for a few
//! seconds and restarted on the same data directory, and Mosquitto is
//! restarted. Afterwards every reading the loggers sent is on the chain exactly
//! once — counted per device and compared by a hash of the readings decoded
//! from the committed transactions — and the gateway's queue is empty.
mod support;

use base64::Engine;
use coldchain_gateway::batching::ledger_reading;
use coldchain_gateway::protocol::{mqtt_payload, DeviceReading};
use coldchain_processors::messages::coldchain::{Reading, SensorPayload};
use coldchain_processors::signing::Signer;
use coldchain_sensors::{Encoding, MqttTransport, Scenario, Simulator, SimulatorConfig, Sink};
use protobuf::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::chain::{recorded, shipment_of, ORG};
use support::processes::{
    metric, metrics_page, node_child_main, GatewayProcess, Mosquitto, NodeProcess,
};
use support::*;

const DEVICES: usize = 4;
const DEVICE_PREFIX: &str = "PF-";
/// How long the loggers publish; the faults happen inside this window.
const STREAM: Duration = Duration::from_secs(16);

/// Not a test of its own: the node child process of the fault test (see
/// `support::processes::NodeProcess`).
#[test]
#[ignore = "the node child process of gateway_node_and_broker_faults_commit_every_reading_exactly_once"]
fn node_child_process() {
    node_child_main();
}

/// Per device: readings in ledger form, in sequence order.
type Readings = BTreeMap<String, Vec<Reading>>;

/// Count and SHA-256 of each device's readings (canonical protobuf bytes, in order).
fn digest(readings: &Readings) -> BTreeMap<String, (usize, String)> {
    readings
        .iter()
        .map(|(device, list)| {
            let mut hash = Sha256::new();
            for r in list {
                hash.update(r.write_to_bytes().unwrap());
            }
            (device.clone(), (list.len(), hex::encode(hash.finalize())))
        })
        .collect()
}

/// Every reading in every committed transaction, via `GET /transactions`
/// (paged). Duplicated sequences are kept, so a double recording shows.
async fn committed_readings(rest_url: &str) -> Readings {
    let http = reqwest::Client::new();
    let mut out: Readings = BTreeMap::new();
    let mut start: Option<String> = None;
    loop {
        let mut url = format!("{rest_url}/transactions?limit=1000");
        if let Some(s) = &start {
            url.push_str(&format!("&start={s}"));
        }
        let page: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        for txn in page["data"].as_array().expect("a data array") {
            if txn["header"]["family_name"] != "coldchain-sensor" {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(txn["payload"].as_str().unwrap())
                .unwrap();
            let payload = SensorPayload::parse_from_bytes(&bytes).unwrap();
            let record = payload.get_record_readings();
            out.entry(record.get_device_id().to_string())
                .or_default()
                .extend(record.get_readings().iter().cloned());
        }
        match page["paging"]["next_position"].as_str() {
            Some(next) => start = Some(next.to_string()),
            None => break,
        }
    }
    for list in out.values_mut() {
        // Stable: two copies of one sequence stay side by side and are both counted.
        list.sort_by_key(|r| r.get_sequence());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_node_and_broker_faults_commit_every_reading_exactly_once() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, signer.private_hex()).unwrap();
    let device_ids: Vec<String> = (1..=DEVICES)
        .map(|n| format!("{DEVICE_PREFIX}{n}"))
        .collect();
    let devices: Vec<&str> = device_ids.iter().map(String::as_str).collect();

    let mut broker = Mosquitto::start(dir.path());
    let node_dir = dir.path().join("node");
    let node_port = free_port();
    let mut node = NodeProcess::start(
        "node_child_process",
        &node_dir,
        node_port,
        &devices,
        signer.public_key(),
    );
    let rest = node.rest_url();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let queue_path = dir.path().join("queue.sqlite");
    let prefix = "faults";
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {rest:?}\nqueue_path = {queue_path:?}\nmetrics_bind = {metrics_addr:?}\n\
         [batching]\nmax_readings = 50\nmax_age_ms = 200\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 50\nbackoff_max_ms = 500\nstatus_wait_s = 1\nrequest_timeout_ms = 3000\n\
         [[mqtt]]\nport = {}\nclient_id = \"gateway-faults\"\ntopic_prefix = {prefix:?}\n",
        broker.port
    );
    for device in &devices {
        text.push_str(&format!(
            "[devices.{device:?}]\norg = {ORG:?}\nshipment = {:?}\n",
            shipment_of(device)
        ));
    }
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let gateway_log = dir.path().join("gateway.log");
    let mut gateway = GatewayProcess::start(&config, &gateway_log);
    // The gateway's first connection subscribes; from then on its session
    // (and the loggers' own sessions) live in the broker, across restarts.
    assert!(
        eventually(10, || std::net::TcpStream::connect(&metrics_addr).is_ok()).await,
        "the gateway process did not start"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The loggers: persistent sessions too, so a broker restart loses nothing between them and the broker.
    let broker_port = broker.port;
    let stream = async move {
        let transport = MqttTransport::connect_with_session(
            "127.0.0.1",
            broker_port,
            "loggers-faults",
            prefix,
            ORG,
            Encoding::Binary,
            false,
        )
        .await;
        let mut simulator = Simulator::new(SimulatorConfig {
            devices: DEVICES,
            device_prefix: DEVICE_PREFIX.into(),
            scenario: Scenario::Steady,
            rate_per_device: 40.0,
            readings_per_message: 4,
            set_point_cdeg: 500,
        });
        let mut sent: BTreeMap<String, Vec<DeviceReading>> = BTreeMap::new();
        simulator
            .run_observed(&mut Sink::Mqtt(&transport), STREAM, |readings| {
                for r in readings {
                    sent.entry(r.device_id.clone()).or_default().push(r.clone());
                }
            })
            .await
            .unwrap();
        // Keep the transport (its event loop) alive until everything is out.
        (sent, transport)
    };

    let at = |s: u64| tokio::time::sleep_until((started + Duration::from_secs(s)).into());
    // Faults, one after another while the loggers publish.
    let base = started.elapsed().as_secs();
    let faults = async {
        at(base + 3).await;
        gateway.kill(); // SIGKILL
        tokio::time::sleep(Duration::from_millis(700)).await;
        let gateway = GatewayProcess::start(&config, &gateway_log);
        at(base + 6).await;
        node.kill(); // SIGKILL
        at(base + 9).await;
        let node = NodeProcess::start(
            "node_child_process",
            &node_dir,
            node_port,
            &devices,
            signer.public_key(),
        );
        at(base + 12).await;
        broker.restart();
        (gateway, node)
    };
    // Not spawned: the simulator's future is not Send (it holds its RNG).
    let ((sent, transport), (mut gateway, node)) = tokio::join!(stream, faults);

    let expected: Readings = sent
        .iter()
        .map(|(d, list)| (d.clone(), list.iter().map(ledger_reading).collect()))
        .collect();
    assert_eq!(expected.len(), DEVICES, "every logger sent readings");
    for (device, list) in &expected {
        let sequences: Vec<u64> = list.iter().map(|r| r.get_sequence()).collect();
        assert_eq!(
            sequences,
            (1..=list.len() as u64).collect::<Vec<_>>(),
            "{device} sent in order"
        );
    }

    // Every device's last sequence and thermal count reach what it sent.
    let mut last = Vec::new();
    let done = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            last.clear();
            for (device, list) in &expected {
                last.push((
                    device.clone(),
                    recorded(&rest, device).await,
                    list.len() as u64,
                ));
            }
            if last
                .iter()
                .all(|(_, (seq, count), n)| seq == n && count == n)
            {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert!(
        done,
        "(device, (last_sequence, thermal readings), sent): {last:?}"
    );
    let committed = committed_readings(&rest).await;
    assert_eq!(
        digest(&committed),
        digest(&expected),
        "committed readings (count, sha256) per device differ from what the loggers sent"
    );

    // The gateway's own view: nothing waiting, nothing in flight.
    let mut page;
    let drained = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            page = metrics_page(&metrics_addr).await.unwrap_or_default();
            let queued = metric(&page, "coldchain_gateway_readings_queued");
            let in_flight = metric(&page, "coldchain_gateway_readings_in_flight");
            if queued == Some(0.0) && in_flight == Some(0.0) {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(drained, "the gateway still holds readings:\n{page}");
    // The faults really reached the (second) gateway process: it retried
    // submissions while the node was down and lost its broker connection.
    let retries = metric(&page, "coldchain_gateway_submit_retries_total").unwrap_or(0.0);
    assert!(
        retries > 0.0,
        "no submission retries while the node was down:\n{page}"
    );
    let log = std::fs::read_to_string(&gateway_log).unwrap();
    assert!(
        log.contains("MQTT connection lost"),
        "the gateway never saw the broker restart; its log:\n{log}"
    );
    gateway.kill();
    drop(transport);
    let queue = coldchain_gateway::queue::Queue::open(&queue_path).unwrap();
    let stats = queue.stats(0).unwrap();
    assert_eq!(
        (stats.queued, stats.in_flight),
        (0, 0),
        "queue left over: {stats:?}"
    );
    // MQTT redelivers messages across the restarts (QoS 1 is at least once):
    // the gateway skips the readings it already has (a message holding only
    // such copies is refused whole, as duplicate or out_of_order, and kept as
    // received). Every refusal must be such a copy of readings on the chain;
    // nothing else may be refused.
    let refused = queue.dead_letters(None, 100_000).unwrap();
    for letter in &refused {
        assert!(
            ["duplicate", "out_of_order"].contains(&letter.reason.as_str())
                && letter.raw_form == "mqtt_payload",
            "unexpected dead letter: {letter:?}"
        );
        let bytes = match &letter.raw_base64 {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            None => letter.raw.clone().into_bytes(),
        };
        let device = letter.device_id.as_deref().unwrap();
        for copy in mqtt_payload::parse_payload(device, &bytes).unwrap() {
            let original = &expected[&copy.device_id][copy.sequence as usize - 1];
            assert_eq!(
                &ledger_reading(&copy),
                original,
                "refused {letter:?} is not a copy of committed readings"
            );
        }
    }
    let total: usize = expected.values().map(Vec::len).sum();
    eprintln!(
        "{total} readings from {DEVICES} loggers committed exactly once; {} redelivered copies refused; {:.1} s",
        refused.len(),
        started.elapsed().as_secs_f64()
    );
    drop(node);
    drop(broker);
}
