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
use support::processes;
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
    // Random bytes without newlines: each burst below is exactly one garbage line.
    let noise: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .map(|b| if b == b'\n' { b'#' } else { b })
        .collect();
    for seq in 1..=30u64 {
        pty.master
            .write_all(&noise[(seq as usize * 50)..(seq as usize * 50 + 40)])
            .unwrap();
        pty.master.write_all(b"\n").unwrap();
        pty.master
            .write_all(serial_line::format_line(&reading("SER-2", seq)).as_bytes())
            .unwrap();
        // A well-formed line whose two checksum digits are wrong.
        let good = serial_line::format_line(&reading("SER-2", 1000 + seq));
        let (content, digits) = good.trim_end().rsplit_once('*').unwrap();
        let wrong = u8::from_str_radix(digits, 16).unwrap() ^ 0x5A;
        let bad_checksum = format!("{content}*{wrong:02X}\r\n");
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
    // Exactly: 30 noise lines + 30 broken JSON messages malformed, 30 bad
    // checksums, 30 NOBODY messages + 30 GHOST lines unknown; nothing else.
    let expected = [
        (Reason::Malformed, 60),
        (Reason::BadChecksum, 30),
        (Reason::UnknownDevice, 60),
    ];
    let counts = |m: &coldchain_gateway::metrics::Metrics| -> Vec<(Reason, u64)> {
        Reason::ALL.iter().map(|r| (*r, m.rejected(*r))).collect()
    };
    let want: Vec<(Reason, u64)> = Reason::ALL
        .iter()
        .map(|r| {
            let n = expected.iter().find(|(e, _)| e == r).map_or(0, |(_, n)| *n);
            (*r, n)
        })
        .collect();
    assert!(
        eventually(10, || counts(gateway.metrics()) == want).await,
        "refusals by reason: {:?}",
        counts(gateway.metrics())
    );
    // 4 serial lines and 3 MQTT messages per round.
    assert_eq!(
        gateway
            .metrics()
            .received
            .load(std::sync::atomic::Ordering::Relaxed),
        30 * 7
    );
    assert_eq!(ledger.recorded("NOBODY"), Vec::<u64>::new());
    assert_eq!(ledger.recorded("SER-2"), (1..=30).collect::<Vec<_>>());
    assert_eq!(ledger.recorded("MQ-2"), (1..=30).collect::<Vec<_>>());
    gateway.stop().await;
    let queue = coldchain_gateway::queue::Queue::open(&setup.config.queue_path).unwrap();
    for (reason, n) in expected {
        let letters = queue.dead_letters(Some(reason.label()), 1000).unwrap();
        assert_eq!(letters.len() as u64, n, "{} dead letters", reason.label());
    }
    assert_eq!(queue.stats(0).unwrap().dead_letters, 150);
    let unknown = queue.dead_letters(Some("unknown_device"), 1000).unwrap();
    assert!(unknown.iter().any(|d| d.detail.contains("GHOST")));
    assert!(unknown.iter().any(|d| d.detail.contains("NOBODY")));
    let checksums = queue.dead_letters(Some("bad_checksum"), 1000).unwrap();
    assert!(checksums.iter().all(|d| d.raw.starts_with("$CCR,SER-2,10")));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_ledger_is_waited_out_with_a_capped_retry_after_and_everything_commits_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let ledger = StandInLedger::start().await;
    // An hour: far beyond backoff_max_ms (300 ms). Obeyed literally, nothing
    // would commit within this test.
    ledger.retry_after_s.store(3600, Relaxed);
    ledger.set_mode(BUSY);
    let setup = setup(&ledger.url, None, &["MQ-5"]);
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-5/readings", setup.prefix);
    for chunk in (1..=100u64).collect::<Vec<_>>().chunks(10) {
        let readings: Vec<_> = chunk.iter().map(|s| reading("MQ-5", *s)).collect();
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
        eventually(10, || ledger.busy_answers.load(Relaxed) >= 3).await,
        "the gateway did not retry after 429 (answers: {})",
        ledger.busy_answers.load(Relaxed)
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let posts_while_busy = ledger.posts.load(Relaxed);
    assert_eq!(ledger.recorded_count(), 0);
    ledger.set_mode(UP);
    assert!(
        eventually(20, || ledger.recorded_count() == 100).await,
        "recorded {} after the ledger stopped answering 429",
        ledger.recorded_count()
    );
    assert_eq!(ledger.recorded("MQ-5"), (1..=100).collect::<Vec<_>>());
    assert!(
        eventually(5, || gateway
            .queue_stats()
            .map(|s| (s.queued, s.in_flight, s.dead_letters))
            .ok()
            == Some((0, 0, 0)))
        .await
    );
    // It waited between attempts (one open batch per device, each wait at
    // least the capped hint); a gateway retrying at once would post thousands.
    assert!(
        posts_while_busy <= 50,
        "{posts_while_busy} posts while the ledger answered 429"
    );
    assert!(gateway.metrics().submit_retries.load(Relaxed) >= 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_alarm_metric_rises_near_the_cap_and_clears_when_the_queue_drains() {
    let ledger = StandInLedger::start().await;
    ledger.set_mode(DOWN);
    let mut setup = setup(&ledger.url, None, &["MQ-6"]);
    // The empty queue's own size, then room for a few hundred readings; the
    // alarm at half of the cap leaves a wide margin before readings are refused.
    let empty = coldchain_gateway::queue::Queue::open(&setup.config.queue_path)
        .unwrap()
        .disk_bytes()
        .unwrap();
    setup.config.queue_disk_cap_bytes = empty * 2 + 200_000;
    setup.config.queue_alarm_fraction = 0.5;
    let gateway = Gateway::start(setup.config.clone()).await.unwrap();
    let page_url = format!("http://{}/metrics", gateway.metrics_addr().unwrap());
    let alarm = || {
        let url = page_url.clone();
        async move {
            let page = reqwest::get(url).await.ok()?.text().await.ok()?;
            processes::metric(&page, "coldchain_gateway_queue_disk_alarm")
        }
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(alarm().await, Some(0.0), "alarm with an empty queue");
    let client = publisher(setup.broker_port).await;
    let topic = format!("{}/carrier/MQ-6/readings", setup.prefix);
    // Fill the queue (the ledger is down) step by step until the alarm rises.
    let mut sent = 0u64;
    while alarm().await != Some(1.0) {
        assert!(sent < 20_000, "no alarm after {sent} queued readings");
        let readings: Vec<_> = (sent + 1..=sent + 50).map(|s| reading("MQ-6", s)).collect();
        client
            .publish(
                &topic,
                QoS::AtLeastOnce,
                false,
                mqtt_payload::encode_json(&readings),
            )
            .await
            .unwrap();
        sent += 50;
        let want = sent;
        assert!(
            eventually(10, || gateway
                .queue_stats()
                .map(|s| s.queued + s.in_flight)
                .ok()
                == Some(want))
            .await
        );
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    assert_eq!(
        gateway.metrics().rejected(Reason::QueueFull),
        0,
        "the alarm must come before the cap"
    );
    ledger.set_mode(UP);
    assert!(
        eventually(30, || ledger.recorded_count() == sent as usize).await,
        "recorded {} of {sent}",
        ledger.recorded_count()
    );
    let mut cleared = false;
    for _ in 0..100 {
        if alarm().await == Some(0.0) {
            cleared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(cleared, "the disk alarm stayed on after the queue drained");
    gateway.stop().await;
}
