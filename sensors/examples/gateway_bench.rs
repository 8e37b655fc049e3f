//! Gateway benchmark: simulated loggers → Mosquitto → gateway → embedded node,
//! all in one process. Prints readings/s committed, receipt-to-commit latency
//! (p50/p99 from the gateway's histogram), the exact latency of excursion
//! edges (the first few devices have excursions; every reading whose in-range
//! state changes is flushed at once) and peak RSS.
//!
//! `cargo run --release -p coldchain-sensors --example gateway_bench -- <devices> <readings/s per device> <seconds> [readings per message] [devices with excursions] [binary|json|senml]`
//!
//! `senml`: the loggers publish SenML (RFC 8428) JSON packs on `…/<device>/senml`
//! (names `urn:dev:mac:<device>:temp`, times in ms), read through `[mqtt.senml]`.
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_node::{Node, NodeConfig};
use coldchain_processors::addressing::{gateway_key, RecordKind};
use coldchain_processors::messages::coldchain::{
    Device, GatewayGrant, Shipment, ShipmentStatus, StorageProfile,
};
use coldchain_processors::signing::Signer;
use coldchain_sensors::{
    senml_time_ms, Encoding, MqttTransport, Scenario, Simulator, SimulatorConfig, Sink,
};
use protobuf::Message;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Every shipment's range (hundredths of °C): 2–8 °C around a 5 °C set-point.
const RANGE_CDEG: std::ops::RangeInclusive<i32> = 200..=800;

/// Devices with excursions unless the sixth argument says otherwise.
const DEFAULT_EXCURSION_DEVICES: usize = 10;

fn genesis(devices: &[String], gateway: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut leaves = Vec::new();
    let mut grant = GatewayGrant::new();
    grant.set_org_id("carrier".into());
    grant.set_public_key(gateway.into());
    leaves.push((
        RecordKind::GatewayGrant.address(&gateway_key("carrier", gateway)),
        grant.write_to_bytes()?,
    ));
    for device in devices {
        let mut record = Device::new();
        record.set_device_id(device.clone());
        record.set_org_id("carrier".into());
        record.set_attached_shipment_id(format!("S-{device}"));
        leaves.push((RecordKind::Device.address(device), record.write_to_bytes()?));
        let mut profile = StorageProfile::new();
        profile.set_min_cdeg(*RANGE_CDEG.start());
        profile.set_max_cdeg(*RANGE_CDEG.end());
        let mut shipment = Shipment::new();
        shipment.set_shipment_id(format!("S-{device}"));
        shipment.set_profile(profile);
        shipment.set_status(ShipmentStatus::IN_TRANSIT);
        shipment.set_custodian_org_id("carrier".into());
        leaves.push((
            RecordKind::Shipment.address(&format!("S-{device}")),
            shipment.write_to_bytes()?,
        ));
    }
    Ok(leaves)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Excursion edges as the devices send them: the same rule as the gateway's
/// (in-range state differs from the device's previous reading, or the first
/// reading is out of range), with the time each edge was handed to MQTT.
#[derive(Default)]
struct EdgeClock {
    watched: HashSet<String>,
    /// SenML: the gateway knows a reading by its time in ms, stamped as the transport does.
    senml: bool,
    senml_last_ms: HashMap<String, u64>,
    in_range: HashMap<String, bool>,
    sent_at_ms: HashMap<(String, u64), u64>,
}

impl EdgeClock {
    fn observe(&mut self, readings: &[coldchain_gateway::protocol::DeviceReading]) {
        let Some(first) = readings.first() else {
            return;
        };
        if !self.watched.contains(&first.device_id) {
            return;
        }
        let now = now_ms();
        for reading in readings {
            let sequence = if self.senml {
                let last = self
                    .senml_last_ms
                    .entry(reading.device_id.clone())
                    .or_insert(0);
                senml_time_ms(last, reading.time_s)
            } else {
                reading.sequence
            };
            let is = RANGE_CDEG.contains(&reading.temperature_cdeg);
            let was = self.in_range.insert(reading.device_id.clone(), is);
            if was.map_or(!is, |was| was != is) {
                self.sent_at_ms
                    .insert((reading.device_id.clone(), sequence), now);
            }
        }
    }
}

/// (p50, p99, max) by nearest rank.
fn spread(mut values: Vec<u64>) -> Option<(u64, u64, u64)> {
    values.sort_unstable();
    let max = *values.last()?;
    let rank = |q: f64| values[((values.len() as f64 * q).ceil() as usize).max(1) - 1];
    Some((rank(0.5), rank(0.99), max))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: f64| {
        args.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let devices = number(1, 100.0) as usize;
    let rate = number(2, 10.0);
    let seconds = number(3, 20.0) as u64;
    let per_message = number(4, 10.0) as usize;
    let excursion_devices = (number(5, DEFAULT_EXCURSION_DEVICES as f64) as usize).min(devices);
    let encoding = match args.get(6).map(String::as_str) {
        None | Some("binary") => Encoding::Binary,
        Some("json") => Encoding::Json,
        Some("senml") => Encoding::Senml,
        Some(other) => anyhow::bail!("encoding {other:?} is not binary, json or senml"),
    };
    let dir = tempfile::tempdir()?;
    let signer = Signer::generate();
    let key = dir.path().join("gw.priv");
    std::fs::write(&key, signer.private_hex())?;
    let prefix = format!("bench{}", std::process::id());
    let mut simulator = Simulator::new(SimulatorConfig {
        devices,
        device_prefix: "B".into(),
        scenario: Scenario::Steady,
        rate_per_device: rate,
        readings_per_message: per_message,
        set_point_cdeg: 500,
    });
    simulator.assign_scenario(excursion_devices, Scenario::Excursions);
    let ids = simulator.device_ids();
    let mut edges = EdgeClock {
        watched: ids.iter().take(excursion_devices).cloned().collect(),
        senml: encoding == Encoding::Senml,
        ..EdgeClock::default()
    };
    let mut node_config = NodeConfig::new(dir.path().join("node"));
    node_config.rest_api = "127.0.0.1:0".parse()?;
    node_config.component = "tcp://127.0.0.1:0".into();
    node_config.handlers = coldchain_processors::family_handlers();
    node_config.genesis_leaves = genesis(&ids, signer.public_key())?;
    let node = tokio::task::spawn_blocking(move || Node::start(node_config)).await??;
    let mut text = format!(
        "key_file = {key:?}\nrest_url = {:?}\nqueue_path = {:?}\nmetrics_bind = \"\"\n\
         [batching]\nmax_readings = 500\nmax_age_ms = 250\nmax_transactions_per_batch = 100\ntick_ms = 20\n\
         [submission]\nmax_in_flight_batches = 16\nstatus_wait_s = 1\n\
         [[mqtt]]\nclient_id = \"{prefix}-gw\"\ntopic_prefix = {prefix:?}\n\
         [mqtt.senml]\nname_prefix = \"urn:dev:mac:\"\n",
        node.rest_url(),
        dir.path().join("queue.sqlite"),
    );
    for id in &ids {
        text.push_str(&format!(
            "[devices.{id}]\norg = \"carrier\"\nshipment = \"S-{id}\"\n"
        ));
    }
    let gateway =
        Gateway::start(GatewayConfig::from_toml(&text).map_err(anyhow::Error::msg)?).await?;
    gateway.metrics().keep_excursion_commits();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let transport = MqttTransport::connect(
        "127.0.0.1",
        1883,
        &format!("{prefix}-sim"),
        &prefix,
        "carrier",
        encoding,
    )
    .await;
    let started = Instant::now();
    let sent = simulator
        .run_observed(
            &mut Sink::Mqtt(&transport),
            Duration::from_secs(seconds),
            |readings| edges.observe(readings),
        )
        .await?;
    let send_done = started.elapsed();
    let target = sent.readings;
    let deadline = Instant::now() + Duration::from_secs(120);
    while gateway.metrics().committed.load(Relaxed) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let m = gateway.metrics();
    let committed = m.committed.load(Relaxed);
    println!("devices {devices}, offered {:.0} readings/s ({rate}/s/device, {per_message}/message, {encoding:?}) for {seconds} s", devices as f64 * rate);
    println!("sent {} readings in {:.1} s ({:.0}/s); committed {committed} in {:.1} s => {:.0} readings/s end to end",
        sent.readings, send_done.as_secs_f64(), sent.readings as f64 / send_done.as_secs_f64(), elapsed.as_secs_f64(), committed as f64 / elapsed.as_secs_f64());
    println!(
        "gateway received {} messages/readings; still queued {:?}",
        m.received.load(Relaxed),
        gateway.queue_stats().map(|s| (s.queued, s.in_flight)).ok()
    );
    println!("receipt-to-commit latency p50 <= {:?} ms, p99 <= {:?} ms; refused {}; batches {}; peak RSS {} MiB (node + gateway + simulator)",
        m.latency_quantile_ms(0.5), m.latency_quantile_ms(0.99),
        coldchain_gateway::validation::Reason::ALL.iter().map(|r| m.rejected(*r)).sum::<u64>(),
        m.batches_committed.load(Relaxed), peak_rss_kib() / 1024);
    let commits = m.take_excursion_commits();
    let unmatched = commits
        .iter()
        .filter(|c| {
            !edges
                .sent_at_ms
                .contains_key(&(c.device_id.clone(), c.sequence))
        })
        .count();
    let from_receipt = spread(commits.iter().map(|c| c.latency_ms()).collect());
    let from_publish = spread(
        commits
            .iter()
            .filter_map(|c| {
                let sent = edges.sent_at_ms.get(&(c.device_id.clone(), c.sequence))?;
                Some(c.committed_at_ms.saturating_sub(*sent))
            })
            .collect(),
    );
    println!(
        "excursion edges: {excursion_devices} devices with excursions sent {} edges; gateway committed {} as urgent ({unmatched} not among the sent edges)",
        edges.sent_at_ms.len(),
        commits.len()
    );
    println!(
        "excursion-edge latency (exact, p50/p99/max ms): receipt-to-commit {from_receipt:?}, publish-to-commit {from_publish:?}; histogram p50 <= {:?} ms, p99 <= {:?} ms",
        m.excursion_latency_quantile_ms(0.5),
        m.excursion_latency_quantile_ms(0.99)
    );
    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    gateway.stop().await;
    tokio::task::spawn_blocking(move || node.shutdown()).await?;
    Ok(())
}
