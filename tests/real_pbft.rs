//! A real four-validator Hyperledger Sawtooth 1.2.6 network with PBFT,
//! started by `scripts/sawtooth.sh network` from the genesis files of
//! `validator-config/genesis` (members, settings, transactor permissioning),
//! each validator with its REST API, settings and identity TPs, PBFT engine
//! and the three `coldchain tp` processes. The sensor gateway streams a
//! logger's readings from Mosquitto while validators are killed with
//! SIGKILL (validator and its engine, as a lost machine):
//!
//! - with the engine we ship (`validator-config/pbft/0001-prepare-quorum-2f.patch`)
//!   commits go on after losing one validator, and after losing the primary;
//!   each restarted validator catches up to the same head and state root;
//!   every reading the gateway acknowledged is on the chain exactly once;
//! - with the stock sawtooth-pbft 1.0.3 engine the same loss of one
//!   validator stops all commits — why the patched engine is shipped.
//!
//! Fails, never skips, when the real stack cannot be built or started.
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_node::testing::http;
use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{Shipment, ThermalRecord};
use support::sawtooth::{start_tps, Network};
use support::{free_port, gln, keygen, state, Cli, Reaper, BIN};

const GTIN: &str = "09501101530003";
const DEVICE: &str = "LOGGER-PBFT-1";
const SHIPMENT: &str = "SHP-PBFT-1";

/// Keys, the network (the admin key founds it; agents and the gateway are
/// permitted transactors) and its 12 coldchain TP processes.
/// Fields drop in order: the TPs and the network are stopped while their
/// folder still exists (`stop` finds the processes by the pid files in it),
/// and only then is the folder removed.
struct Fixture {
    _tps: Vec<Reaper>,
    network: Network,
    cli: Cli,
    dir: tempfile::TempDir,
}

fn network(engine: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let maker = keygen(&keys, "maker");
    let carrier = keygen(&keys, "carrier");
    let gateway = keygen(&keys, "gateway");
    let _ = admin;
    let network = Network::pbft(
        &dir.path().join("sawtooth"),
        engine,
        &keys.join("admin.priv"),
        &[&maker, &carrier, &gateway],
    );
    let mut tps = Vec::new();
    for node in 0..4 {
        let tp_dir = dir.path().join(format!("tp-{node}"));
        std::fs::create_dir_all(&tp_dir).unwrap();
        tps.extend(start_tps(&tp_dir, &network.node_component(node)));
    }
    // Clients use validator 3, which the tests never kill.
    let cli = Cli {
        url: network.node_rest_url(3),
        keys,
    };
    Fixture {
        _tps: tps,
        network,
        cli,
        dir,
    }
}

/// Organisations, a logger, a lot and a shipment in transit with the logger
/// attached, and the gateway allowed to sign the carrier's readings.
fn onboard(f: &Fixture) {
    let keys = &f.cli.keys;
    let public = |name: &str| {
        std::fs::read_to_string(keys.join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_string()
    };
    let (maker_gln, carrier_gln) = (gln("950110100001"), gln("950110100002"));
    f.cli.onboard(
        "maker",
        &public("maker"),
        "pharmaco",
        "manufacturer",
        &maker_gln,
    );
    f.cli.onboard(
        "carrier",
        &public("carrier"),
        "coldtrans",
        "carrier",
        &carrier_gln,
    );
    let cli = &f.cli;
    cli.ok(
        "carrier",
        &[
            "device",
            "register",
            "--id",
            DEVICE,
            "--org",
            "coldtrans",
            "--calibration-due",
            "20281231",
        ],
    );
    cli.ok(
        "carrier",
        &[
            "org",
            "authorize-gateway",
            "--org",
            "coldtrans",
            "--public-key",
            &public("gateway"),
        ],
    );
    cli.ok(
        "maker",
        &[
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            "P1",
            "--expiry",
            "20281231",
            "--product",
            "Vaccine",
            "--site",
            &maker_gln,
            "--quantity",
            "1",
            "--serial",
            "P1-1",
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "create",
            "--id",
            SHIPMENT,
            "--from",
            &maker_gln,
            "--to",
            &carrier_gln,
            "--lot",
            &format!("{GTIN}/P1"),
        ],
    );
    cli.ok(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            SHIPMENT,
            "--device",
            DEVICE,
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            SHIPMENT,
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.ok("carrier", &["shipment", "accept", "--id", SHIPMENT]);
}

fn head(rest: &str) -> Option<(u64, String)> {
    let page = http::get(rest, "/blocks?limit=1").ok()?.json();
    let header = &page["data"][0]["header"];
    Some((
        header["block_num"].as_str()?.parse().ok()?,
        header["state_root_hash"].as_str()?.to_string(),
    ))
}

/// Waits until the chain seen at `rest` grows past `above` (true), or `within` ends (false).
fn commits_beyond(rest: &str, above: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if head(rest).is_some_and(|(num, _)| num > above) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// The PBFT view every live engine last logged, and so the primary
/// (members are validator-0..3 in `members.conf` order: primary = view mod 4).
fn primary(dir: &Path) -> usize {
    let mut view = 0u64;
    for node in 0..4 {
        let log = std::fs::read_to_string(dir.join(format!("sawtooth/logs/engine-{node}.log")))
            .unwrap_or_default();
        for line in log.lines() {
            for marker in ["Updated to view ", "Updated view to "] {
                if let Some(rest) = line.split(marker).nth(1) {
                    if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
                        view = view.max(v);
                    }
                }
            }
        }
    }
    (view % 4) as usize
}

/// A logger publishing readings over MQTT (QoS 1) to the test broker at a
/// steady pace on its own thread; counts the readings the broker
/// acknowledged. The gateway is subscribed throughout, so each of them
/// reaches it, and it acknowledges a reading to the broker only once it is
/// in its durable queue: all of them must end up on the chain, once.
struct Logger {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Logger {
    /// Publishes `per_second` readings a second, stamped from `start_s` (the
    /// shipment's start: the sensor family refuses readings from before it)
    /// at the same pace, so no reading is ahead of the gateway's clock.
    fn start(broker: &str, per_second: u64, start_s: u64) -> Logger {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (host, port) = broker.rsplit_once(':').expect("host:port");
        let (host, port) = (host.to_string(), port.parse::<u16>().expect("port"));
        let thread = std::thread::spawn(move || {
            use coldchain_gateway::protocol::{mqtt_payload::encode_json, DeviceReading};
            use rumqttc::{Client, MqttOptions, QoS};
            let mut options =
                MqttOptions::new(format!("pbft-logger-{}", std::process::id()), host, port);
            options.set_keep_alive(Duration::from_secs(10));
            let (client, mut connection) = Client::new(options, 100);
            let acks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counter = acks.clone();
            let stopping = flag.clone();
            let events = std::thread::spawn(move || {
                for event in connection.iter() {
                    match event {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        // Disconnected on purpose at the end, or the broker is gone.
                        Err(_) if stopping.load(Ordering::Relaxed) => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
            });
            let mut sequence = 0u64;
            let topic = format!("coldchain/coldtrans/{DEVICE}/readings");
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..per_second / 10 {
                    sequence += 1;
                    let reading = DeviceReading {
                        device_id: DEVICE.into(),
                        sequence,
                        time_s: start_s + sequence / per_second,
                        temperature_cdeg: 500 + (sequence % 50) as i32,
                        humidity_permille: None,
                        door: None,
                        location: None,
                    };
                    let _ =
                        client.publish(&topic, QoS::AtLeastOnce, false, encode_json(&[reading]));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while acks.load(Ordering::Relaxed) < sequence && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = client.disconnect();
            let _ = events.join();
            acks.load(Ordering::Relaxed).min(sequence)
        });
        Logger {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops publishing; returns how many readings the broker acknowledged.
    fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or(0))
            .unwrap_or(0)
    }
}

fn start_gateway(f: &Fixture, broker: &str) -> (Reaper, String) {
    let (host, port) = broker.rsplit_once(':').unwrap();
    let metrics = free_port();
    let config = format!(
        r#"key_file = "{key}"
rest_url = "{rest}"
queue_path = "{queue}"
metrics_bind = "127.0.0.1:{metrics}"

[batching]
max_readings = 500
max_age_ms = 1000

[[mqtt]]
host = "{host}"
port = {port}
client_id = "coldchain-pbft-gateway-{pid}"

[devices.{DEVICE}]
org = "coldtrans"
shipment = "{SHIPMENT}"
"#,
        key = f.cli.keys.join("gateway.priv").display(),
        rest = f.network.node_rest_url(3),
        queue = f.dir.path().join("gateway-queue.sqlite").display(),
        pid = std::process::id(),
    );
    let path = f.dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(f.dir.path().join("gateway.log")).unwrap();
    let child = Command::new(BIN)
        .args(["gateway", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start coldchain gateway");
    support::wait_for_port(metrics);
    (Reaper(child), format!("http://127.0.0.1:{metrics}"))
}

/// The last 40 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn recorded(rest: &str) -> u64 {
    state::<ThermalRecord>(rest, &RecordKind::ShipmentThermal.address(SHIPMENT))
        .map(|r| r.get_reading_count())
        .unwrap_or(0)
}

/// Kills validator `node` (and its engine) mid-stream, checks commits go on
/// without it, restarts it and waits until it is level with validator 3.
fn lose_and_recover(f: &Fixture, node: usize, what: &str) {
    let rest3 = f.network.node_rest_url(3);
    let (before, _) = head(&rest3).expect("validator 3 answers");
    f.network.kill(node);
    assert!(
        commits_beyond(&rest3, before + 2, Duration::from_secs(90)),
        "no commits within 90 s after losing {what} (validator {node}); head stayed at {before}; \
         gateway log:\n{}",
        tail(&f.dir.path().join("gateway.log"))
    );
    f.network.restart(node);
    let rest = f.network.node_rest_url(node);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ours, theirs) = (head(&rest), head(&rest3));
        if let (Some((a, _)), Some((b, _))) = (&ours, &theirs) {
            if a >= b {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "restarted validator {node} did not catch up: {ours:?} vs validator 3 {theirs:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn pbft_with_the_shipped_engine_survives_a_lost_validator_and_a_lost_primary() {
    let f = network("patched");
    onboard(&f);
    let broker = std::env::var("COLDCHAIN_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (_gateway, _metrics) = start_gateway(&f, &broker);
    let rest3 = f.network.node_rest_url(3);
    let shipment: Shipment =
        state(&rest3, &RecordKind::Shipment.address(SHIPMENT)).expect("the shipment");
    let logger = Logger::start(&broker, 200, shipment.get_created_at_s());
    // With all four validators up, readings commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded(&rest3) == 0 {
        assert!(
            Instant::now() < deadline,
            "no reading committed within 60 s with all validators up; gateway log:\n{}",
            tail(&f.dir.path().join("gateway.log"))
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A secondary first (validator 1 unless it is the primary), then the primary.
    let first = if primary(f.dir.path()) == 1 { 2 } else { 1 };
    lose_and_recover(&f, first, "a secondary");
    let leader = primary(f.dir.path());
    assert_ne!(
        leader, 3,
        "the clients' validator became primary; pick another to kill"
    );
    lose_and_recover(&f, leader, "the primary");
    std::thread::sleep(Duration::from_secs(3));
    let acknowledged = logger.stop();
    assert!(
        acknowledged > 1000,
        "the logger published {acknowledged} readings"
    );

    // Every acknowledged reading on the chain, once.
    let rest3 = f.network.node_rest_url(3);
    let deadline = Instant::now() + Duration::from_secs(180);
    while recorded(&rest3) < acknowledged {
        assert!(
            Instant::now() < deadline,
            "{} of {acknowledged} acknowledged readings committed after 180 s",
            recorded(&rest3)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(recorded(&rest3), acknowledged, "no reading twice");
    eprintln!("PBFT: {acknowledged} readings acknowledged by the broker, all committed once");

    // All four validators agree: same head and state root once quiet.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let heads: Vec<_> = (0..4).map(|n| head(&f.network.node_rest_url(n))).collect();
        if heads.iter().all(|h| h.is_some() && *h == heads[3]) {
            break;
        }
        assert!(Instant::now() < deadline, "validators disagree: {heads:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn pbft_with_the_stock_engine_stops_committing_when_one_validator_is_lost() {
    let f = network("stock");
    let rest3 = f.network.node_rest_url(3);
    // Commits while all four run: an organisation is created.
    f.cli.ok(
        "admin",
        &[
            "org", "create", "--id", "first", "--name", "First", "--role", "carrier",
        ],
    );
    let (before, _) = head(&rest3).expect("validator 3 answers");
    f.network.kill(1);
    // The same kind of transaction never commits now.
    let mut submit = Command::new(BIN)
        .args([
            "org", "create", "--id", "second", "--name", "Second", "--role", "carrier",
        ])
        .args(["--url", &rest3, "--key"])
        .arg(f.cli.keys.join("admin.priv"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coldchain org create");
    assert!(
        !commits_beyond(&rest3, before, Duration::from_secs(60)),
        "the stock engine committed after losing validator 1 (upstream fixed it?)"
    );
    let _ = submit.kill();
    let _ = submit.wait();
}
