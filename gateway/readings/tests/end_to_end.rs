//! The gateway end to end: pseudo-terminal serial loggers and a real MQTT
//! broker in, a Sawtooth REST API out (the stand-in in `support`, which applies
//! the sensor processor's sequence rule).
mod support;

use coldchain_gateway::protocol::{mqtt_payload, serial_line, DeviceReading, Door};
use coldchain_gateway::validation::Reason;
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::io::Write;
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    config: GatewayConfig,
    prefix: String,
    broker_port: u16,
    _broker: Option<std::process::Child>,
}

fn setup(ledger_url: &str, serial_path: Option<&str>, devices: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let (broker_port, broker) = mqtt_broker();
    let prefix = unique("cc");
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {ledger_url:?}\nqueue_path = {:?}\nmetrics_bind = \"127.0.0.1:0\"\n\
         [batching]\nmax_readings = 20\nmax_age_ms = 200\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 20\nbackoff_max_ms = 300\nstatus_wait_s = 0\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n",
        dir.path().join("queue.sqlite"),
        unique("gw"),
    );
    if let Some(path) = serial_path {
        text.push_str(&format!("[[serial]]\npath = {path:?}\nbaud = 115200\n"));
    }
    for device in devices {
        text.push_str(&format!(
            "[devices.{device}]\norg = \"carrier\"\nshipment = \"S-{device}\"\n"
        ));
    }
    let config = GatewayConfig::from_toml(&text).unwrap();
    Setup {
        _dir: dir,
        config,
        prefix,
        broker_port,
        _broker: broker,
    }
}

fn reading(device: &str, sequence: u64) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: now_s() - 1000 + sequence,
        temperature_cdeg: 400 + (sequence % 50) as i32,
        humidity_permille: Some(600),
        door: Some(Door::Closed),
        location: None,
    }
}

async fn publisher(port: u16) -> AsyncClient {
    let mut options = MqttOptions::new(unique("pub"), "127.0.0.1", port);
    options.set_keep_alive(std::time::Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 256);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_from_serial_and_mqtt_are_committed_and_a_repeat_is_recorded_once() {
    let ledger = StandInLedger::start().await;
    let mut pty = open_pty();
    let setup = setup(&ledger.url, Some(&pty.path), &["SER-1", "MQ-1"]);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-1/readings", setup.prefix);
    for seq in 1..=60u64 {
        pty.master
            .write_all(serial_line::format_line(&reading("SER-1", seq)).as_bytes())
            .unwrap();
    }
    for chunk in (1..=60u64).collect::<Vec<_>>().chunks(15) {
        let readings: Vec<_> = chunk.iter().map(|s| reading("MQ-1", *s)).collect();
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&readings),
            )
            .await
            .unwrap();
    }
    // The same reading again, on both paths.
    pty.master
        .write_all(serial_line::format_line(&reading("SER-1", 60)).as_bytes())
        .unwrap();
    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            mqtt_payload::encode_binary(&[reading("MQ-1", 60)]),
        )
        .await
        .unwrap();

    assert!(
        eventually(20, || ledger.recorded_count() == 120).await,
        "recorded {}",
        ledger.recorded_count()
    );
    assert!(eventually(10, || gateway.metrics().rejected(Reason::Duplicate) == 2).await);
    assert_eq!(ledger.recorded("SER-1"), (1..=60).collect::<Vec<_>>());
    assert_eq!(ledger.recorded("MQ-1"), (1..=60).collect::<Vec<_>>());
    assert!(
        eventually(5, || gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight)
            .ok()
            == Some(0))
        .await
    );
    let metrics = reqwest::get(format!(
        "http://{}/metrics",
        gateway.metrics_addr().unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        metrics.contains("coldchain_gateway_readings_committed_total 120"),
        "{metrics}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_with_reasons_while_good_readings_flow() {
    let ledger = StandInLedger::start().await;
    let mut pty = open_pty();
    let setup = setup(&ledger.url, Some(&pty.path), &["SER-2", "MQ-2"]);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-2/readings", setup.prefix);
    let noise: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for seq in 1..=30u64 {
        pty.master
            .write_all(&noise[(seq as usize * 50)..(seq as usize * 50 + 40)])
            .unwrap();
        pty.master.write_all(b"\n").unwrap();
        pty.master
            .write_all(serial_line::format_line(&reading("SER-2", seq)).as_bytes())
            .unwrap();
        let bad_checksum =
            serial_line::format_line(&reading("SER-2", 1000 + seq)).replace("*", "*0");
        pty.master.write_all(bad_checksum.as_bytes()).unwrap();
        client
            .publish(&topic, QoS::AtLeastOnce, false, b"{\"seq\": oops".to_vec())
            .await
            .unwrap();
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&[reading("MQ-2", seq)]),
            )
            .await
            .unwrap();
        let stranger = format!("{}/carrier/NOBODY/readings", setup.prefix);
        client
            .publish(
                &stranger,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&[reading("NOBODY", seq)]),
            )
            .await
            .unwrap();
        pty.master
            .write_all(serial_line::format_line(&reading("GHOST", seq)).as_bytes())
            .unwrap();
    }
    assert!(
        eventually(20, || ledger.recorded_count() == 60).await,
        "recorded {}",
        ledger.recorded_count()
    );
    assert!(
        eventually(10, || gateway.metrics().rejected(Reason::UnknownDevice)
            == 60)
        .await
    );
    let m = gateway.metrics();
    assert!(
        m.rejected(Reason::Malformed) >= 60,
        "malformed {}",
        m.rejected(Reason::Malformed)
    );
    assert_eq!(ledger.recorded("NOBODY"), Vec::<u64>::new());
    gateway.stop().await;
    let queue = coldchain_gateway::queue::Queue::open(&setup.config.queue_path).unwrap();
    let unknown = queue.dead_letters(Some("unknown_device"), 1000).unwrap();
    assert_eq!(unknown.len(), 60);
    assert!(unknown.iter().any(|d| d.detail.contains("GHOST")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_outage_and_forgotten_batches_lose_nothing() {
    let ledger = StandInLedger::start().await;
    let setup = setup(&ledger.url, None, &["MQ-3"]);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-3/readings", setup.prefix);
    ledger.set_mode(DOWN);
    for seq in 1..=100u64 {
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&[reading("MQ-3", seq)]),
            )
            .await
            .unwrap();
    }
    assert!(
        eventually(10, || gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight)
            .ok()
            == Some(100))
        .await
    );
    ledger.set_mode(FORGETFUL);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(ledger.recorded_count(), 0);
    ledger.set_mode(UP);
    assert!(
        eventually(20, || ledger.recorded_count() == 100).await,
        "recorded {}",
        ledger.recorded_count()
    );
    assert_eq!(ledger.recorded("MQ-3"), (1..=100).collect::<Vec<_>>());
    assert!(
        eventually(5, || gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight)
            .ok()
            == Some(0))
        .await
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_batch_the_ledger_already_applied_is_settled_by_the_devices_last_sequence() {
    let ledger = StandInLedger::start().await;
    let setup = setup(&ledger.url, None, &["MQ-4"]);
    ledger.set_mode(AMNESIAC);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-4/readings", setup.prefix);
    for chunk in (1..=50u64).collect::<Vec<_>>().chunks(10) {
        let readings: Vec<_> = chunk.iter().map(|s| reading("MQ-4", *s)).collect();
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&readings),
            )
            .await
            .unwrap();
    }
    assert!(
        eventually(20, || ledger.recorded_count() == 50).await,
        "recorded {}",
        ledger.recorded_count()
    );
    assert!(
        eventually(10, || gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight)
            .ok()
            == Some(0))
        .await
    );
    assert!(
        ledger.replays_refused() > 0,
        "the ledger never saw a re-sent batch"
    );
    assert_eq!(ledger.recorded("MQ-4"), (1..=50).collect::<Vec<_>>());
    assert_eq!(
        gateway
            .metrics()
            .committed
            .load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    let stats = gateway.queue_stats().unwrap();
    assert_eq!(stats.dead_letters, 0);
    gateway.stop().await;
}
