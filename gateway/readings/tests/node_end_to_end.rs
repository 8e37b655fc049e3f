//! The gateway against the real embedded node running the coldchain families:
//! pty serial and MQTT loggers in, readings committed by the sensor processor.
mod support;

use coldchain_gateway::protocol::{mqtt_payload, serial_line, DeviceReading};
use coldchain_gateway::validation::Reason;
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::io::Write;
use std::time::Duration;
use support::chain::{recorded, shipment_of, start_node, ORG};
use support::*;

fn reading(device: &str, sequence: u64, temperature_cdeg: i32) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: now_s() - 2000 + sequence,
        temperature_cdeg,
        humidity_permille: None,
        door: None,
        location: None,
    }
}

fn config_text(
    key: &Path,
    rest_url: &str,
    queue: &Path,
    broker_port: u16,
    prefix: &str,
    serial: Option<&str>,
    devices: &[&str],
) -> String {
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {rest_url:?}\nqueue_path = {queue:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = 50\nmax_age_ms = 200\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 50\nbackoff_max_ms = 500\nstatus_wait_s = 1\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n",
        unique("gw"),
    );
    if let Some(path) = serial {
        text.push_str(&format!("[[serial]]\npath = {path:?}\nbaud = 115200\n"));
    }
    for device in devices {
        text.push_str(&format!(
            "[devices.{device}]\norg = {ORG:?}\nshipment = {:?}\n",
            shipment_of(device)
        ));
    }
    text
}

use std::path::Path;

async fn publisher(port: u16) -> AsyncClient {
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new(unique("pub"), "127.0.0.1", port), 256);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_and_mqtt_readings_are_committed_on_the_node_and_a_repeat_once() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let key = dir.path().join("gw.priv");
    std::fs::write(&key, signer.private_hex()).unwrap();
    let devices = ["NS-1", "NM-1"];
    let node = start_node(&dir.path().join("node"), 0, &devices, signer.public_key()).await;
    let (broker_port, _broker) = mqtt_broker();
    let prefix = unique("node");
    let mut pty = open_pty();
    let text = config_text(
        &key,
        &node.rest_url(),
        &dir.path().join("q.sqlite"),
        broker_port,
        &prefix,
        Some(&pty.path),
        &devices,
    );
    let gateway = Gateway::start(GatewayConfig::from_toml(&text).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let client = publisher(broker_port).await;
    let topic = format!("{prefix}/{ORG}/NM-1/readings");
    for seq in 1..=80u64 {
        // An excursion in the middle: 9 °C for ten readings.
        let temperature = if (40..50).contains(&seq) { 900 } else { 500 };
        pty.master
            .write_all(serial_line::format_line(&reading("NS-1", seq, temperature)).as_bytes())
            .unwrap();
    }
    for chunk in (1..=80u64).collect::<Vec<_>>().chunks(20) {
        let readings: Vec<_> = chunk.iter().map(|s| reading("NM-1", *s, 450)).collect();
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
    pty.master
        .write_all(serial_line::format_line(&reading("NS-1", 80, 500)).as_bytes())
        .unwrap();
    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            mqtt_payload::encode_json(&[reading("NM-1", 80, 450)]),
        )
        .await
        .unwrap();

    let rest = node.rest_url();
    let mut last = ((0, 0), (0, 0));
    let done = eventually(30, || {
        let rest = rest.clone();
        last =
            futures_block(
                async move { (recorded(&rest, "NS-1").await, recorded(&rest, "NM-1").await) },
            );
        last == ((80, 80), (80, 80))
    })
    .await;
    assert!(done, "recorded (last_sequence, thermal readings): {last:?}");
    assert!(eventually(5, || gateway.metrics().rejected(Reason::Duplicate) == 2).await);
    assert!(
        eventually(5, || gateway
            .queue_stats()
            .map(|s| s.queued + s.in_flight + s.dead_letters)
            .ok()
            == Some(2))
        .await
    );
    gateway.stop().await;
    tokio::task::spawn_blocking(move || node.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stopped_for_a_while_then_every_reading_is_committed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::generate();
    let key = dir.path().join("gw.priv");
    std::fs::write(&key, signer.private_hex()).unwrap();
    let devices = ["NO-1", "NO-2"];
    let node_dir = dir.path().join("node");
    let node = start_node(&node_dir, 0, &devices, signer.public_key()).await;
    let rest = node.rest_url();
    let port: u16 = rest.rsplit(':').next().unwrap().parse().unwrap();
    let (broker_port, _broker) = mqtt_broker();
    let prefix = unique("outage");
    let text = config_text(
        &key,
        &rest,
        &dir.path().join("q.sqlite"),
        broker_port,
        &prefix,
        None,
        &devices,
    );
    let gateway = Gateway::start(GatewayConfig::from_toml(&text).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let client = publisher(broker_port).await;
    let send = |from: u64, to: u64| {
        let client = client.clone();
        let prefix = prefix.clone();
        async move {
            for seq in from..=to {
                for device in ["NO-1", "NO-2"] {
                    let topic = format!("{prefix}/{ORG}/{device}/readings");
                    client
                        .publish(
                            topic,
                            QoS::AtLeastOnce,
                            false,
                            mqtt_payload::encode_binary(&[reading(device, seq, 500)]),
                        )
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    send(1, 100).await;
    tokio::task::spawn_blocking(move || node.shutdown())
        .await
        .unwrap();
    send(101, 200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node = start_node(&node_dir, port, &devices, signer.public_key()).await;
    send(201, 250).await;
    let mut last = ((0, 0), (0, 0));
    let done = eventually(40, || {
        let rest = rest.clone();
        last =
            futures_block(
                async move { (recorded(&rest, "NO-1").await, recorded(&rest, "NO-2").await) },
            );
        last == ((250, 250), (250, 250))
    })
    .await;
    assert!(done, "recorded (last_sequence, thermal readings): {last:?}");
    assert!(
        eventually(10, || gateway
            .queue_stats()
            .map(|s| (s.queued, s.in_flight, s.dead_letters))
            .ok()
            == Some((0, 0, 0)))
        .await
    );
    gateway.stop().await;
    tokio::task::spawn_blocking(move || node.shutdown())
        .await
        .unwrap();
}

/// Runs a future to completion from synchronous test code on its own thread.
fn futures_block<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    })
    .join()
    .unwrap()
}
