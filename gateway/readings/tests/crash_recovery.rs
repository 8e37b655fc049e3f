//! Fault tests with a real gateway process: kill -9 mid-stream, lose the
//! ledger's answers, restart — every reading is recorded exactly once and the
//! queue ends empty.
mod support;

use coldchain_gateway::protocol::{mqtt_payload, DeviceReading};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const DEVICES: usize = 5;
const MESSAGES_PER_DEVICE: u64 = 40;
const READINGS_PER_MESSAGE: u64 = 10;

fn start_gateway(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_coldchain-gateway"))
        .arg("--config")
        .arg(config)
        .env("COLDCHAIN_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gateway binary")
}

fn reading(device: &str, sequence: u64) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: now_s() - 5000 + sequence,
        temperature_cdeg: 300 + (sequence % 200) as i32,
        humidity_permille: None,
        door: None,
        location: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_restarts_and_every_reading_is_recorded_exactly_once() {
    let ledger = StandInLedger::start().await;
    let (broker_port, _broker) = mqtt_broker();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let prefix = unique("crash");
    let queue_path = dir.path().join("queue.sqlite");
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {:?}\nqueue_path = {queue_path:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = 25\nmax_age_ms = 100\ntick_ms = 10\n\
         [submission]\nbackoff_initial_ms = 20\nbackoff_max_ms = 300\nstatus_wait_s = 0\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n",
        ledger.url,
        unique("gw"),
    );
    for d in 0..DEVICES {
        text.push_str(&format!(
            "[devices.K{d}]\norg = \"carrier\"\nshipment = \"S-{d}\"\n"
        ));
    }
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();

    let mut gateway = start_gateway(&config);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut options = MqttOptions::new(unique("pub"), "127.0.0.1", broker_port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 512);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });

    let publish = |m: u64| {
        let client = client.clone();
        let prefix = prefix.clone();
        async move {
            for d in 0..DEVICES {
                let device = format!("K{d}");
                let readings: Vec<_> = (1..=READINGS_PER_MESSAGE)
                    .map(|i| reading(&device, m * READINGS_PER_MESSAGE + i))
                    .collect();
                let topic = format!("{prefix}/carrier/{device}/readings");
                client
                    .publish(
                        topic,
                        QoS::AtLeastOnce,
                        false,
                        mqtt_payload::encode_json(&readings),
                    )
                    .await
                    .unwrap();
            }
        }
    };
    for m in 0..MESSAGES_PER_DEVICE / 2 {
        publish(m).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Mid-stream, with batches in flight: kill -9, and lose the ledger's answers too.
    assert!(eventually(10, || ledger.recorded_count() > 0).await);
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    ledger.forget_statuses();
    // Keep producing while the gateway is down; the broker queues for its session.
    for m in MESSAGES_PER_DEVICE / 2..MESSAGES_PER_DEVICE * 3 / 4 {
        publish(m).await;
    }
    let mut gateway = start_gateway(&config);
    // And once more, a little later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    let mut gateway = start_gateway(&config);
    for m in MESSAGES_PER_DEVICE * 3 / 4..MESSAGES_PER_DEVICE {
        publish(m).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = DEVICES * (MESSAGES_PER_DEVICE * READINGS_PER_MESSAGE) as usize;
    let done = eventually(40, || ledger.recorded_count() == expected).await;
    // Let the gateway settle what the ledger already has, then stop it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    eprintln!(
        "replays refused by the ledger: {}, posts: {}",
        ledger.replays_refused(),
        ledger.posts.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(done, "recorded {} of {expected}", ledger.recorded_count());
    for d in 0..DEVICES {
        let recorded = ledger.recorded(&format!("K{d}"));
        assert_eq!(
            recorded,
            (1..=MESSAGES_PER_DEVICE * READINGS_PER_MESSAGE).collect::<Vec<_>>(),
            "device K{d}"
        );
    }
    let queue = coldchain_gateway::queue::Queue::open(&queue_path).unwrap();
    let stats = queue.stats(0).unwrap();
    assert_eq!(
        (stats.queued, stats.in_flight),
        (0, 0),
        "queue left over: {stats:?}"
    );
    assert!(queue
        .dead_letters(Some("ledger_invalid"), 10)
        .unwrap()
        .is_empty());
}
