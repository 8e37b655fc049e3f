//! `coldchain-gateway dead-letters list|replay` as an operator runs them: a
//! gateway process refuses readings of a device it does not know, the config
//! is fixed, the dead letters are listed as JSON and replayed, and the next
//! gateway run commits them.
mod support;

use coldchain_gateway::protocol::{mqtt_payload, DeviceReading};
use coldchain_processors::signing::Signer;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::processes::{metric, metrics_page, GatewayProcess};
use support::*;

fn config_text(
    key: &Path,
    ledger: &str,
    queue: &Path,
    metrics: &str,
    broker_port: u16,
    prefix: &str,
    devices: &[&str],
) -> String {
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {ledger:?}\nqueue_path = {queue:?}\nmetrics_bind = {metrics:?}\n\
         [batching]\nmax_readings = 20\nmax_age_ms = 100\ntick_ms = 20\n\
         [submission]\nbackoff_initial_ms = 20\nbackoff_max_ms = 300\nstatus_wait_s = 0\n\
         [[mqtt]]\nport = {broker_port}\nclient_id = {:?}\ntopic_prefix = {prefix:?}\n",
        unique("gw"),
    );
    for device in devices {
        text.push_str(&format!(
            "[devices.{device}]\norg = \"carrier\"\nshipment = \"S-{device}\"\n"
        ));
    }
    text
}

/// Runs `coldchain-gateway --config <config> dead-letters <args…>`.
fn dead_letters(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coldchain-gateway"))
        .arg("--config")
        .arg(config)
        .arg("dead-letters")
        .args(args)
        .env("COLDCHAIN_LOG", "warn")
        .output()
        .expect("run coldchain-gateway dead-letters")
}

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn reading(device: &str, sequence: u64) -> DeviceReading {
    DeviceReading {
        device_id: device.into(),
        sequence,
        time_s: now_s() - 500 + sequence,
        temperature_cdeg: 410 + sequence as i32,
        humidity_permille: None,
        door: None,
        location: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_as_json_and_replayed_after_the_config_is_fixed() {
    let ledger = StandInLedger::start().await;
    let (broker_port, _broker) = mqtt_broker();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let queue = dir.path().join("queue.sqlite");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let prefix = unique("dl");
    let config = dir.path().join("gateway.toml");
    // First run: DL-2 is missing from the config.
    std::fs::write(
        &config,
        config_text(
            &key,
            &ledger.url,
            &queue,
            &metrics_addr,
            broker_port,
            &prefix,
            &["DL-1"],
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let mut gateway = GatewayProcess::start(&config, &log);
    assert!(eventually(10, || std::net::TcpStream::connect(&metrics_addr).is_ok()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (client, mut events) = AsyncClient::new(
        MqttOptions::new(unique("pub"), "127.0.0.1", broker_port),
        64,
    );
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    // DL-1 in one message; DL-2 (unknown to this config) in three, each
    // refused whole as one dead letter.
    let messages: [(&str, Vec<u64>); 4] = [
        ("DL-1", (1..=5).collect()),
        ("DL-2", vec![1, 2]),
        ("DL-2", vec![3, 4]),
        ("DL-2", vec![5]),
    ];
    for (device, sequences) in &messages {
        let readings: Vec<_> = sequences.iter().map(|s| reading(device, *s)).collect();
        client
            .publish(
                format!("{prefix}/carrier/{device}/readings"),
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&readings),
            )
            .await
            .unwrap();
    }
    client
        .publish(
            format!("{prefix}/carrier/DL-1/readings"),
            QoS::AtLeastOnce,
            false,
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    let unknown = "coldchain_gateway_readings_rejected_total{reason=\"unknown_device\"}";
    let malformed = "coldchain_gateway_readings_rejected_total{reason=\"malformed\"}";
    let mut page;
    let refused = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            page = metrics_page(&metrics_addr).await.unwrap_or_default();
            if metric(&page, unknown) == Some(3.0) && metric(&page, malformed) == Some(1.0) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(refused, "refusals not counted:\n{page}");
    assert!(eventually(10, || ledger.recorded("DL-1").len() == 5).await);
    gateway.kill();

    // The operator fixes the config, then inspects and replays.
    std::fs::write(
        &config,
        config_text(
            &key,
            &ledger.url,
            &queue,
            &metrics_addr,
            broker_port,
            &prefix,
            &["DL-1", "DL-2"],
        ),
    )
    .unwrap();
    let all = json_lines(&dead_letters(&config, &["list"]));
    assert_eq!(all.len(), 4, "{all:?}");
    let only_unknown = json_lines(&dead_letters(
        &config,
        &["list", "--reason", "unknown_device"],
    ));
    assert_eq!(only_unknown.len(), 3, "{only_unknown:?}");
    for entry in &only_unknown {
        assert_eq!(entry["reason"], "unknown_device", "{entry}");
        assert_eq!(
            entry["source"],
            format!("mqtt:{prefix}/carrier/DL-2/readings"),
            "{entry}"
        );
        assert!(
            entry["detail"].as_str().unwrap().contains("DL-2"),
            "{entry}"
        );
        // The message as received: the readings, as JSON.
        let raw: serde_json::Value = serde_json::from_str(entry["raw"].as_str().unwrap()).unwrap();
        assert!(raw.as_array().is_some_and(|r| !r.is_empty()), "{entry}");
    }
    let limited = json_lines(&dead_letters(&config, &["list", "--limit", "2"]));
    assert_eq!(limited.len(), 2);

    let nothing = dead_letters(&config, &["replay"]);
    assert!(!nothing.status.success());
    assert!(
        String::from_utf8_lossy(&nothing.stderr).contains("--all"),
        "{nothing:?}"
    );

    let replay = dead_letters(&config, &["replay", "--all"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let outcomes = String::from_utf8(replay.stdout).unwrap();
    let lines: Vec<&str> = outcomes.lines().collect();
    assert_eq!(lines.len(), 4, "{outcomes}");
    // Plain words, one line per entry.
    assert_eq!(
        lines.iter().filter(|l| l.contains(": queued ")).count(),
        3,
        "{outcomes}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(": refused again: malformed"))
            .count(),
        1,
        "{outcomes}"
    );
    assert!(!outcomes.contains("RefusedAgain"), "{outcomes}");
    // Only the malformed message stays a dead letter.
    let left = json_lines(&dead_letters(&config, &["list"]));
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["reason"], "malformed");

    // The next gateway run sends the replayed readings; each is recorded once.
    let mut gateway = GatewayProcess::start(&config, &log);
    assert!(
        eventually(20, || ledger.recorded("DL-2")
            == (1..=5).collect::<Vec<_>>())
        .await,
        "DL-2 recorded {:?}",
        ledger.recorded("DL-2")
    );
    assert_eq!(ledger.recorded("DL-1"), (1..=5).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.kill();
    let stats = coldchain_gateway::queue::Queue::open(&queue)
        .unwrap()
        .stats(0)
        .unwrap();
    assert_eq!(
        (stats.queued, stats.in_flight, stats.dead_letters),
        (0, 0, 1),
        "{stats:?}"
    );
}

#[test]
fn an_unknown_reason_is_refused_with_the_valid_reasons_listed() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_text(
            &key,
            "http://127.0.0.1:9",
            &dir.path().join("queue.sqlite"),
            "",
            1883,
            "cc",
            &[],
        ),
    )
    .unwrap();
    for args in [
        &["list", "--reason", "bogus"][..],
        &["replay", "--all", "--reason", "bogus"][..],
    ] {
        let output = dead_letters(&config, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded: {output:?}");
        assert!(
            stderr.contains("bogus")
                && stderr.contains("unknown_device")
                && stderr.contains("ledger_invalid"),
            "{args:?}: {stderr}"
        );
    }
}
