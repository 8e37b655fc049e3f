//! MQTT faults that must not stop the gateway (tracker issue 12): a message far
//! over the size limit is dead-lettered and the stream behind it goes on; a
//! broker connection that keeps failing shows in `/metrics` and `/health`.
mod support;

use coldchain_gateway::protocol::{mqtt_payload, DeviceReading};
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::time::Duration;
use support::processes::metric;
use support::*;

const TEN_MB: usize = 10 * 1024 * 1024;

fn config(dir: &std::path::Path, ledger_url: &str, broker_port: u16, prefix: &str) -> String {
    let key = dir.join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    format!(
        "key_file = {key:?}\nrest_url = {ledger_url:?}\nqueue_path = {:?}\nmetrics_bind = \"127.0.0.1:0\"\n\
         [batching]\nmax_readings = 20\nmax_age_ms = 100\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 20\nbackoff_max_ms = 300\nstatus_wait_s = 0\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n\
         [devices.BIG-1]\norg = \"carrier\"\nshipment = \"S-BIG\"\n",
        dir.join("queue.sqlite"),
        unique("gw"),
    )
}

fn reading(sequence: u64) -> DeviceReading {
    DeviceReading {
        device_id: "BIG-1".into(),
        sequence,
        time_s: now_s() - 1000 + sequence,
        temperature_cdeg: 450,
        humidity_permille: None,
        door: None,
        location: None,
    }
}

async fn page(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Drops the gateway's persistent session at the shared broker when the test
/// ends, even on failure: a session left holding a 10 MB message would sit
/// in the broker (and its persistence file) for good.
struct ForgetSession {
    port: u16,
    client_id: String,
}

impl Drop for ForgetSession {
    fn drop(&mut self) {
        let (port, client_id) = (self.port, self.client_id.clone());
        // rumqttc's blocking client runs its own runtime: not on a tokio thread.
        let _ = std::thread::spawn(move || {
            let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
            options.set_clean_session(true);
            options.set_max_packet_size(64 << 20, 1 << 20);
            let (client, mut connection) = rumqttc::Client::new(options, 10);
            for (i, event) in connection.iter().enumerate() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) | Err(_) => break,
                    _ if i > 100 => break,
                    _ => {}
                }
            }
            let _ = client.disconnect();
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_a_too_large_dead_letter_and_the_stream_goes_on() {
    let ledger = StandInLedger::start().await;
    let (broker_port, _broker) = mqtt_broker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("big");
    let config =
        GatewayConfig::from_toml(&config(dir.path(), &ledger.url, broker_port, &prefix)).unwrap();
    let _forget = ForgetSession {
        port: broker_port,
        client_id: config.mqtt[0].client_id.clone(),
    };
    let gateway = Gateway::start(config.clone()).await.unwrap();
    let metrics_addr = gateway.metrics_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut options = MqttOptions::new(unique("pub"), "127.0.0.1", broker_port);
    options.set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut events) = AsyncClient::new(options, 64);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let topic = format!("{prefix}/carrier/BIG-1/readings");
    // A logger dumping its whole memory at once: well-formed readings, 10 MB
    // of them, far over the 1 MiB default limit.
    let mut count = 0;
    let mut huge = Vec::new();
    while huge.len() < TEN_MB {
        count += 20_000;
        huge = mqtt_payload::encode_json(&(1..=count).map(reading).collect::<Vec<_>>());
    }
    let huge_size = huge.len();
    client
        .publish(&topic, QoS::AtLeastOnce, false, huge)
        .await
        .unwrap();
    for sequence in 1..=4 {
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&[reading(sequence)]),
            )
            .await
            .unwrap();
    }

    assert!(
        eventually(30, || ledger.recorded("BIG-1") == vec![1, 2, 3, 4]).await,
        "the four messages behind the oversized one were not recorded: {:?}",
        ledger.recorded("BIG-1")
    );
    let (_, text) = page(metrics_addr, "/metrics").await.unwrap();
    assert_eq!(
        metric(
            &text,
            "coldchain_gateway_readings_rejected_total{reason=\"too_large\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let broker = format!("broker=\"127.0.0.1:{broker_port}\"");
    assert_eq!(
        metric(
            &text,
            &format!("coldchain_gateway_mqtt_connection_failures_total{{{broker}}}")
        ),
        Some(0.0),
        "the oversized message cost the connection:\n{text}"
    );
    gateway.stop().await;

    let queue = coldchain_gateway::queue::Queue::open(&config.queue_path).unwrap();
    let letters = queue.dead_letters(None, 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.reason, "too_large");
    assert_eq!(letter.source, format!("mqtt:{topic}"));
    assert_eq!(letter.raw_size, huge_size as u64);
    assert_eq!(letter.raw.len(), 64 * 1024, "the first 64 KiB are kept");
    assert!(
        letter.raw.starts_with("[{\"seq\":1,"),
        "{}",
        &letter.raw[..40]
    );
    assert!(
        letter.detail.contains(&huge_size.to_string()) && letter.detail.contains("1048576"),
        "{}",
        letter.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_connection_that_keeps_failing_shows_in_metrics_and_health() {
    let ledger = StandInLedger::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet.
    let port = free_port();
    let config =
        GatewayConfig::from_toml(&config(dir.path(), &ledger.url, port, &unique("down"))).unwrap();
    let gateway = Gateway::start(config).await.unwrap();
    let addr = gateway.metrics_addr().unwrap();
    let broker = format!("broker=\"127.0.0.1:{port}\"");
    let consecutive = format!("coldchain_gateway_mqtt_consecutive_failures{{{broker}}}");
    let mut text = String::new();
    let mut failing = false;
    for _ in 0..300 {
        text = page(addr, "/metrics")
            .await
            .map(|p| p.1)
            .unwrap_or_default();
        if metric(&text, &consecutive).is_some_and(|n| n >= 3.0) {
            failing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failing, "no failing connection in /metrics:\n{text}");
    let total = format!("coldchain_gateway_mqtt_connection_failures_total{{{broker}}}");
    assert!(metric(&text, &total).is_some_and(|n| n >= 3.0), "{text}");
    assert_eq!(
        metric(
            &text,
            &format!("coldchain_gateway_mqtt_connected{{{broker}}}")
        ),
        Some(0.0)
    );
    let (status, health) = page(addr, "/health").await.unwrap();
    assert_eq!(status, 503, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "failing", "{health}");
    let problem = health["problems"][0].as_str().unwrap_or_default();
    assert!(
        problem.contains(&format!("127.0.0.1:{port}")) && problem.contains("in a row"),
        "{health}"
    );

    // The broker comes up: the gateway connects and is healthy again.
    let mut mosquitto = std::process::Command::new("mosquitto")
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mosquitto (install the mosquitto package)");
    let mut healthy = false;
    let mut last = String::new();
    for _ in 0..300 {
        if let Some((status, body)) = page(addr, "/health").await {
            if status == 200 {
                healthy = true;
                last = body;
                break;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    assert!(healthy, "still unhealthy with the broker up: {last}");
    let health: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(health["mqtt"][0]["connected"], true, "{health}");
    gateway.stop().await;
}
