//! Modbus RTU polling end to end: the gateway polls the simulator's slaves
//! (`coldchain_sensors::modbus`, real RTU frames with CRC-16/MODBUS) over a
//! pseudo-terminal pair and stores readings in its SQLite queue. The ledger
//! URL points at a closed port, so readings stay in the queue to be looked at.
mod support;

use coldchain_gateway::sources::modbus::GapKind;
use coldchain_gateway::{Gateway, GatewayConfig, GatewayHandle};
use coldchain_processors::signing::Signer;
use coldchain_sensors::modbus::{ModbusSlave, SlaveBehaviour};
use std::path::{Path, PathBuf};
use support::{eventually, free_port, now_s};

const BAUD: u32 = 115_200;

/// A gateway config polling `devices` (TOML of `[[modbus.devices]]` bodies)
/// on `slave`, every device routed to carrier / S-<device>.
fn config(dir: &Path, slave: &str, devices: &[(&str, &str)]) -> GatewayConfig {
    let key = dir.join("gateway.priv");
    if !key.exists() {
        std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    }
    let mut text = format!(
        "key_file = {key:?}\nrest_url = \"http://127.0.0.1:{}\"\nqueue_path = {:?}\nmetrics_bind = \"127.0.0.1:0\"\n\
         [submission]\nbackoff_initial_ms = 1000\nbackoff_max_ms = 5000\n\
         [[modbus]]\npath = {slave:?}\nbaud = {BAUD}\nresponse_timeout_ms = 100\n",
        free_port(),
        dir.join("queue.sqlite"),
    );
    for (device, body) in devices {
        text.push_str(&format!(
            "[[modbus.devices]]\ndevice = {device:?}\npoll_interval_ms = 100\n{body}\n"
        ));
    }
    for (device, _) in devices {
        text.push_str(&format!(
            "[devices.{device}]\norg = \"carrier\"\nshipment = \"S-{device}\"\n"
        ));
    }
    let config = GatewayConfig::from_toml(&text).unwrap();
    config.check().unwrap();
    config
}

/// (sequence, time_s, temperature) of `device`'s readings in the queue.
fn queued(queue: &PathBuf, device: &str) -> Vec<(u64, u64, i32)> {
    let conn = rusqlite::Connection::open(queue).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let mut statement = conn
        .prepare("SELECT sequence, time_s, temperature_cdeg FROM readings WHERE device_id = ?1 ORDER BY id")
        .unwrap();
    let rows = statement
        .query_map([device], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get(2)?,
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn gaps(gateway: &GatewayHandle, device: &str, kind: GapKind) -> u64 {
    gateway.metrics().modbus.gaps(device, kind)
}

fn assert_increasing(readings: &[(u64, u64, i32)]) {
    for pair in readings.windows(2) {
        assert!(
            pair[1].0 > pair[0].0,
            "sequences must increase: {readings:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_registers_become_queued_readings_with_increasing_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    slave.set_register(1, 0, (-183i16) as u16); // −18.3 °C in tenths
    slave.set_float32(2, 10, 4.56);
    let config = config(
        dir.path(),
        slave.path(),
        &[
            (
                "CR-INT",
                "unit_id = 1\nregister = 0\ndata_type = \"int16\"\nscale = 10",
            ),
            (
                "CR-FLOAT",
                "unit_id = 2\nregister = 10\nfunction = \"input\"\ndata_type = \"float32\"",
            ),
        ],
    );
    let queue = config.queue_path.clone();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        eventually(20, || queued(&queue, "CR-INT").len() >= 5
            && queued(&queue, "CR-FLOAT").len() >= 5)
        .await,
        "readings queued: {:?} / {:?}",
        queued(&queue, "CR-INT"),
        queued(&queue, "CR-FLOAT")
    );
    let ints = queued(&queue, "CR-INT");
    let floats = queued(&queue, "CR-FLOAT");
    assert_eq!(ints[0].0, 1, "numbering starts at 1");
    assert_increasing(&ints);
    assert_increasing(&floats);
    assert!(ints.iter().all(|r| r.2 == -1830), "{ints:?}");
    assert!(floats.iter().all(|r| r.2 == 456), "{floats:?}");
    let now = now_s();
    assert!(
        ints.iter().all(|r| r.1 <= now && r.1 + 60 > now),
        "stamped with the gateway's clock"
    );

    let page = reqwest::get(format!(
        "http://{}/metrics",
        gateway.metrics_addr().unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("coldchain_gateway_modbus_gaps_total{device=\"CR-INT\",kind=\"timeout\"} 0"),
        "{page}"
    );
    assert!(page.contains("coldchain_gateway_modbus_readings_total{device=\"CR-FLOAT\"}"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_that_stops_answering_is_a_timeout_gap_and_no_reading() {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    slave.set_register(1, 0, 45);
    let config = config(
        dir.path(),
        slave.path(),
        &[(
            "CR-1",
            "unit_id = 1\nregister = 0\ndata_type = \"int16\"\nscale = 10",
        )],
    );
    let queue = config.queue_path.clone();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(eventually(20, || queued(&queue, "CR-1").len() >= 3).await);

    slave.set_behaviour(1, SlaveBehaviour::Silent);
    assert!(eventually(20, || gaps(&gateway, "CR-1", GapKind::Timeout) >= 1).await);
    let before = queued(&queue, "CR-1").len();
    let timeouts = gaps(&gateway, "CR-1", GapKind::Timeout);
    assert!(
        eventually(20, || gaps(&gateway, "CR-1", GapKind::Timeout)
            >= timeouts + 5)
        .await
    );
    assert_eq!(
        queued(&queue, "CR-1").len(),
        before,
        "a silent slave gave a reading"
    );
    let page = reqwest::get(format!(
        "http://{}/metrics",
        gateway.metrics_addr().unwrap()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let line = page
        .lines()
        .find(|l| {
            l.starts_with("coldchain_gateway_modbus_gaps_total{device=\"CR-1\",kind=\"timeout\"}")
        })
        .unwrap_or_else(|| panic!("no timeout series in {page}"));
    let counted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= timeouts + 5, "{line}");

    // Answering again: readings go on with the next numbers.
    let last = queued(&queue, "CR-1").last().unwrap().0;
    slave.set_behaviour(1, SlaveBehaviour::Answer);
    assert!(eventually(20, || queued(&queue, "CR-1").len() >= before + 2).await);
    let after = queued(&queue, "CR-1");
    assert_eq!(after[before].0, last + 1, "{after:?}");
    assert_increasing(&after);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_responses_and_corrupted_crcs_are_gaps_not_readings() {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    for unit in 1..=3 {
        slave.set_register(unit, 0, 50);
    }
    slave.set_behaviour(1, SlaveBehaviour::Exception(0x04));
    slave.set_behaviour(2, SlaveBehaviour::CorruptCrc);
    let config = config(
        dir.path(),
        slave.path(),
        &[
            (
                "CR-EXC",
                "unit_id = 1\nregister = 0\ndata_type = \"int16\"\nscale = 10",
            ),
            (
                "CR-CRC",
                "unit_id = 2\nregister = 0\ndata_type = \"int16\"\nscale = 10",
            ),
            (
                "CR-OK",
                "unit_id = 3\nregister = 0\ndata_type = \"int16\"\nscale = 10",
            ),
        ],
    );
    let queue = config.queue_path.clone();
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        eventually(30, || gaps(&gateway, "CR-EXC", GapKind::Exception) >= 3
            && gaps(&gateway, "CR-CRC", GapKind::CrcError) >= 3
            && queued(&queue, "CR-OK").len() >= 3)
        .await,
        "exception gaps {}, crc gaps {} (timeouts {}), good readings {}",
        gaps(&gateway, "CR-EXC", GapKind::Exception),
        gaps(&gateway, "CR-CRC", GapKind::CrcError),
        gaps(&gateway, "CR-CRC", GapKind::Timeout),
        queued(&queue, "CR-OK").len()
    );
    assert!(queued(&queue, "CR-EXC").is_empty());
    assert!(queued(&queue, "CR-CRC").is_empty());
    assert_eq!(
        gaps(&gateway, "CR-CRC", GapKind::Timeout),
        0,
        "a corrupted answer is no timeout"
    );
    assert!(queued(&queue, "CR-OK").iter().all(|r| r.2 == 500));

    let mut render = String::new();
    gateway.metrics().modbus.render(&mut render);
    assert!(render.contains("kind=\"crc_error\""), "{render}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_restart_sequences_continue_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    slave.set_register(1, 0, 45);
    let devices = [(
        "CR-1",
        "unit_id = 1\nregister = 0\ndata_type = \"int16\"\nscale = 10",
    )];
    let config_first = config(dir.path(), slave.path(), &devices);
    let queue = config_first.queue_path.clone();
    let gateway = Gateway::start(config_first).await.unwrap();
    assert!(eventually(20, || queued(&queue, "CR-1").len() >= 3).await);
    gateway.stop().await;
    let first_run = queued(&queue, "CR-1");

    let gateway = Gateway::start(config(dir.path(), slave.path(), &devices))
        .await
        .unwrap();
    assert!(eventually(20, || queued(&queue, "CR-1").len() >= first_run.len() + 3).await);
    gateway.stop().await;
    let both = queued(&queue, "CR-1");
    assert_eq!(both[..first_run.len()], first_run[..]);
    assert_increasing(&both);
    let highest_before = first_run.last().unwrap().0;
    assert!(both[first_run.len()].0 > highest_before, "{both:?}");
}

#[test]
fn modbus_settings_are_checked_with_clear_messages() {
    let base = "key_file = \"k\"\n[[modbus]]\npath = \"/dev/ttyUSB0\"\n[[modbus.devices]]\ndevice = \"CR-1\"\n";
    let check = |extra: &str| {
        GatewayConfig::from_toml(&format!("{base}{extra}"))
            .map_err(|e| e.to_string())
            .and_then(|c| c.check().map_err(|e| e.to_string()))
    };
    assert!(check("register = 0\nunit_id = 1\ndata_type = \"int16\"\n").is_ok());
    let message = check("register = 0\nunit_id = 0\ndata_type = \"int16\"\n").unwrap_err();
    assert!(
        message.contains("unit_id 0 must be between 1 and 247"),
        "{message}"
    );
    let message = check("register = 0\nunit_id = 1\ndata_type = \"int32\"\n").unwrap_err();
    assert!(
        message.contains("int32") && message.contains("float32"),
        "{message}"
    );
    let message =
        check("register = 0\nunit_id = 1\ndata_type = \"int16\"\npoll_interval_ms = 10\n")
            .unwrap_err();
    assert!(message.contains("poll_interval_ms 10"), "{message}");
    let message = check("unit_id = 1\ndata_type = \"float32\"\nregister = 65535\n").unwrap_err();
    assert!(message.contains("65535"), "{message}");
}
