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
async fn adjacent_registers_of_one_unit_are_read_with_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    slave.set_register(5, 0, 21); // 2.1 °C
    slave.set_register(5, 1, 35); // 3.5 °C
    slave.set_float32(5, 2, -20.25);
    let config = config(
        dir.path(),
        slave.path(),
        &[
            (
                "CH-1",
                "unit_id = 5\nregister = 0\ndata_type = \"int16\"\nscale = 10",
            ),
            (
                "CH-2",
                "unit_id = 5\nregister = 1\ndata_type = \"uint16\"\nscale = 10",
            ),
            ("CH-3", "unit_id = 5\nregister = 2\ndata_type = \"float32\""),
        ],
    );
    let queue = config.queue_path.clone();
    let gateway = Gateway::start(config).await.unwrap();
    let channels = ["CH-1", "CH-2", "CH-3"];
    assert!(eventually(20, || channels.iter().all(|c| queued(&queue, c).len() >= 5)).await);
    gateway.stop().await;
    let requests = slave.requests();
    let readings: usize = channels.iter().map(|c| queued(&queue, c).len()).sum();
    assert!(
        readings as u64 >= 3 * requests - 3,
        "{readings} readings from {requests} requests: one request should carry all three channels"
    );
    assert!(queued(&queue, "CH-1").iter().all(|r| r.2 == 210));
    assert!(queued(&queue, "CH-2").iter().all(|r| r.2 == 350));
    assert!(queued(&queue, "CH-3").iter().all(|r| r.2 == -2025));
    for channel in channels {
        assert_increasing(&queued(&queue, channel));
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_queue_file_continues_above_the_ledgers_last_sequence() {
    // The ledger already holds 500 readings of CR-1 (an earlier gateway whose
    // queue file is gone): new readings must be numbered above them, or the
    // sensor processor would take them for replays.
    let ledger = support::StandInLedger::start().await;
    ledger
        .state
        .lock()
        .unwrap()
        .recorded
        .insert("CR-1".into(), (1..=500).map(|s| (s, 450)).collect());
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(BAUD).unwrap();
    slave.set_register(1, 0, 45);
    let mut config = config(
        dir.path(),
        slave.path(),
        &[(
            "CR-1",
            "unit_id = 1\nregister = 0\ndata_type = \"int16\"\nscale = 10",
        )],
    );
    config.rest_url = ledger.url.clone();
    config.batching.max_age_ms = 200;
    config.batching.tick_ms = 20;
    let gateway = Gateway::start(config).await.unwrap();
    assert!(
        eventually(30, || ledger.recorded("CR-1").len() >= 503).await,
        "recorded {} readings, {} refused as replays",
        ledger.recorded("CR-1").len(),
        ledger.replays_refused()
    );
    gateway.stop().await;
    assert_eq!(ledger.replays_refused(), 0);
    assert!(ledger.recorded("CR-1")[500..].iter().all(|s| *s > 500));
}

/// `coldchain simulate --transport modbus`: its transmitters are polled with
/// the configuration it prints, and their registers follow the loggers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_transmitters_follow_the_loggers_temperatures() {
    use coldchain_sensors::modbus::{SimulatedLine, SimulatedTransmitters};
    let dir = tempfile::tempdir().unwrap();
    let mut transmitters = SimulatedTransmitters::open(&SimulatedLine {
        devices: 3,
        device_prefix: "SIM-".into(),
        scenario: coldchain_sensors::Scenario::Steady,
        set_point_cdeg: -1800,
        rate: 10.0,
        baud: 19_200,
        duration: std::time::Duration::from_secs(60),
    })
    .unwrap();
    let key = dir.path().join("gateway.priv");
    std::fs::write(&key, Signer::generate().private_hex()).unwrap();
    let mut text = format!(
        "key_file = {key:?}\nrest_url = \"http://127.0.0.1:{}\"\nqueue_path = {:?}\nmetrics_bind = \"\"\n",
        free_port(),
        dir.path().join("queue.sqlite")
    );
    text.push_str(
        &transmitters
            .gateway_config()
            .replace("poll_interval_ms = 1000", "poll_interval_ms = 200"),
    );
    for n in 1..=3 {
        text.push_str(&format!(
            "[devices.SIM-{n}]\norg = \"carrier\"\nshipment = \"S-1\"\n"
        ));
    }
    let config = GatewayConfig::from_toml(&text).unwrap();
    let queue = config.queue_path.clone();
    let gateway = Gateway::start(config).await.unwrap();
    transmitters
        .run(10.0, std::time::Duration::from_secs(2))
        .await;
    assert!(
        eventually(20, || (1..=3)
            .all(|n| queued(&queue, &format!("SIM-{n}")).len() >= 5))
        .await
    );
    gateway.stop().await;
    for n in 1..=3 {
        let readings = queued(&queue, &format!("SIM-{n}"));
        assert_increasing(&readings);
        assert!(
            readings
                .iter()
                .all(|r| (-2100..=-1500).contains(&r.2) && r.2 % 10 == 0),
            "a freezer at -18 °C, in tenths: {readings:?}"
        );
    }
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

/// The bench of issue 14: 200 registers polled every second on one line, at
/// 9600, 19200 and 115200 baud, against the simulator pacing the pty to the
/// baud rate; once as 200 transmitters of one register each (200 requests a
/// second) and once as 20 transmitters of 10 adjacent registers (20 requests
/// of 10 registers). Prints register reads/s achieved, missed poll slots and
/// gaps beside the theoretical limit. Run with
/// `cargo nextest run -p coldchain-gateway --test modbus --run-ignored only --no-capture`
/// (`MODBUS_BENCH_SECONDS`, default 10 per run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: about 80 s"]
async fn bench_200_registers_at_1_hz_on_one_line() {
    let seconds = std::env::var("MODBUS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    println!("layout | baud | theoretical ms/request | theoretical line load at 1 Hz | register reads/s measured | missed slots | gaps");
    for (units, per_unit) in [(200u16, 1u16), (20, 10)] {
        for baud in [9_600u32, 19_200, 115_200] {
            let (reads, missed, gaps) = bench_run(units, per_unit, baud, seconds).await;
            let bits = 11.0;
            let gap_s = if baud > 19_200 {
                0.00175
            } else {
                3.5 * bits / baud as f64
            };
            // Request 8 bytes; answer 5 + 2 per register; a 3.5-character silence after each.
            let request_s = (13.0 + 2.0 * per_unit as f64) * bits / baud as f64 + 2.0 * gap_s;
            println!(
                "{units} units x {per_unit} | {baud} | {:.2} | {:.0} % | {reads:.1} | {missed} | {gaps}",
                request_s * 1000.0,
                100.0 * request_s * units as f64,
            );
        }
    }
}

/// One bench run: (register reads/s, missed slots, gaps) over `seconds`.
async fn bench_run(units: u16, per_unit: u16, baud: u32, seconds: u64) -> (f64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let slave = ModbusSlave::open(baud).unwrap();
    let mut names = Vec::new();
    let mut bodies = Vec::new();
    for unit in 1..=units {
        for register in 0..per_unit {
            slave.set_register(unit as u8, register, 45);
            names.push(format!("BENCH-{unit}-{register}"));
            bodies.push(format!(
                "unit_id = {unit}\nregister = {register}\ndata_type = \"int16\"\nscale = 10"
            ));
        }
    }
    let devices: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(bodies.iter().map(String::as_str))
        .collect();
    let mut config = config(dir.path(), slave.path(), &devices);
    config.modbus[0].baud = baud;
    config.modbus[0].response_timeout_ms = 200;
    for device in &mut config.modbus[0].devices {
        device.poll_interval_ms = 1000;
    }
    let gateway = Gateway::start(config).await.unwrap();
    // Let the first round (all due at once) pass, then measure whole seconds.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let totals = |g: &GatewayHandle| {
        let m = &g.metrics().modbus;
        let readings: u64 = names.iter().map(|d| m.readings(d)).sum();
        let missed: u64 = names.iter().map(|d| m.missed_polls(d)).sum();
        let gaps: u64 = names
            .iter()
            .flat_map(|d| GapKind::ALL.map(|k| m.gaps(d, k)))
            .sum();
        (readings, missed, gaps)
    };
    let before = totals(&gateway);
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
    let after = totals(&gateway);
    let elapsed = started.elapsed().as_secs_f64();
    gateway.stop().await;
    (
        (after.0 - before.0 + after.2 - before.2) as f64 / elapsed,
        after.1 - before.1,
        after.2 - before.2,
    )
}
