//! Gateway benchmark: simulated loggers → Mosquitto → gateway → embedded node,
//! all in one process. Prints readings/s committed, receipt-to-commit latency
//! (p50/p99 from the gateway's histogram) and peak RSS.
//!
//! `cargo run --release -p coldchain-sensors --example gateway_bench -- <devices> <readings/s per device> <seconds> [readings per message]`
use coldchain_gateway::{Gateway, GatewayConfig};
use coldchain_node::{Node, NodeConfig};
use coldchain_processors::addressing::{gateway_key, RecordKind};
use coldchain_processors::messages::coldchain::{Device, GatewayGrant, Shipment, ShipmentStatus, StorageProfile};
use coldchain_processors::signing::Signer;
use coldchain_sensors::{Encoding, MqttTransport, Scenario, Simulator, SimulatorConfig, Sink};
use protobuf::Message;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

fn genesis(devices: &[String], gateway: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut leaves = Vec::new();
    let mut grant = GatewayGrant::new();
    grant.set_org_id("carrier".into());
    grant.set_public_key(gateway.into());
    leaves.push((RecordKind::GatewayGrant.address(&gateway_key("carrier", gateway)), grant.write_to_bytes()?));
    for device in devices {
        let mut record = Device::new();
        record.set_device_id(device.clone());
        record.set_org_id("carrier".into());
        record.set_attached_shipment_id(format!("S-{device}"));
        leaves.push((RecordKind::Device.address(device), record.write_to_bytes()?));
        let mut profile = StorageProfile::new();
        profile.set_min_cdeg(200);
        profile.set_max_cdeg(800);
        let mut shipment = Shipment::new();
        shipment.set_shipment_id(format!("S-{device}"));
        shipment.set_profile(profile);
        shipment.set_status(ShipmentStatus::IN_TRANSIT);
        shipment.set_custodian_org_id("carrier".into());
        leaves.push((RecordKind::Shipment.address(&format!("S-{device}")), shipment.write_to_bytes()?));
    }
    Ok(leaves)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: f64| args.get(i).and_then(|a| a.parse::<f64>().ok()).unwrap_or(default);
    let devices = number(1, 100.0) as usize;
    let rate = number(2, 10.0);
    let seconds = number(3, 20.0) as u64;
    let per_message = number(4, 10.0) as usize;
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
    let ids = simulator.device_ids();
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
         [[mqtt]]\nclient_id = \"{prefix}-gw\"\ntopic_prefix = {prefix:?}\n",
        node.rest_url(),
        dir.path().join("queue.sqlite"),
    );
    for id in &ids {
        text.push_str(&format!("[devices.{id}]\norg = \"carrier\"\nshipment = \"S-{id}\"\n"));
    }
    let gateway = Gateway::start(GatewayConfig::from_toml(&text).map_err(anyhow::Error::msg)?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let transport = MqttTransport::connect("127.0.0.1", 1883, &format!("{prefix}-sim"), &prefix, "carrier", Encoding::Binary).await;
    let started = Instant::now();
    let sent = simulator.run(&mut Sink::Mqtt(&transport), Duration::from_secs(seconds)).await?;
    let send_done = started.elapsed();
    let target = sent.readings;
    let deadline = Instant::now() + Duration::from_secs(120);
    while gateway.metrics().committed.load(Relaxed) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let m = gateway.metrics();
    let committed = m.committed.load(Relaxed);
    println!("devices {devices}, offered {:.0} readings/s ({rate}/s/device, {per_message}/message) for {seconds} s", devices as f64 * rate);
    println!("sent {} readings in {:.1} s ({:.0}/s); committed {committed} in {:.1} s => {:.0} readings/s end to end",
        sent.readings, send_done.as_secs_f64(), sent.readings as f64 / send_done.as_secs_f64(), elapsed.as_secs_f64(), committed as f64 / elapsed.as_secs_f64());
    println!("receipt-to-commit latency p50 <= {:?} ms, p99 <= {:?} ms; refused {}; batches {}; peak RSS {} MiB (node + gateway + simulator)",
        m.latency_quantile_ms(0.5), m.latency_quantile_ms(0.99),
        coldchain_gateway::validation::Reason::ALL.iter().map(|r| m.rejected(*r)).sum::<u64>(),
        m.batches_committed.load(Relaxed), peak_rss_kib() / 1024);
    gateway.stop().await;
    tokio::task::spawn_blocking(move || node.shutdown()).await?;
    Ok(())
}
