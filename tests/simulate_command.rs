//! `coldchain simulate` as a user runs it, twice in a row and over a serial
//! pseudo-terminal, against the real gateway and node (Mosquitto on
//! `COLDCHAIN_TEST_MQTT`, default 127.0.0.1:1883, with a topic prefix of this
//! test's own):
//! - a second run goes on after the first run's sequences (kept in the
//!   `--state` file), so the gateway takes its readings instead of refusing
//!   them as `out_of_order`; `--start-sequence` starts where it is told;
//! - with `--transport serial` the pty path is printed before anything is
//!   sent and the simulator waits for the gateway to open it, so a gateway
//!   started after the simulator still gets every reading.
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::ThermalRecord;

use support::{free_port, gln, keygen, start_node, state, Cli, Families, NodeProcess, Reaper, BIN};

const GTIN: &str = "09501101530003";

fn broker() -> (String, u16) {
    let address = std::env::var("COLDCHAIN_TEST_MQTT").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("COLDCHAIN_TEST_MQTT={address} is not host:port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("COLDCHAIN_TEST_MQTT={address} has no port number"));
    assert!(
        std::net::TcpStream::connect((host, port)).is_ok(),
        "no MQTT broker at {address}; run the tests with scripts/test.sh (it starts Mosquitto)"
    );
    (host.to_string(), port)
}

/// A node where carrier `coldtrans` holds shipment `shipment` watched by
/// logger `device`, and whose gateway key is `keys/gateway.priv`.
fn ledger_with_shipment(dir: &Path, shipment: &str, device: &str) -> NodeProcess {
    let keys = dir.join("keys");
    let admin = keygen(&keys, "admin");
    let maker = keygen(&keys, "maker");
    let carrier = keygen(&keys, "carrier");
    let gateway = keygen(&keys, "gateway");
    let node = start_node(dir, &admin, Families::InProcess);
    let cli = Cli {
        url: node.url.clone(),
        keys,
    };
    let (maker_gln, carrier_gln) = (gln("950110100001"), gln("950110100002"));
    cli.onboard("maker", &maker, "pharmaco", "manufacturer", &maker_gln);
    cli.onboard("carrier", &carrier, "coldtrans", "carrier", &carrier_gln);
    let run = |key: &str, args: &[&str]| {
        cli.ok(key, args);
    };
    run(
        "carrier",
        &[
            "device",
            "register",
            "--id",
            device,
            "--org",
            "coldtrans",
            "--calibration-due",
            "20381231",
        ],
    );
    run(
        "carrier",
        &[
            "org",
            "authorize-gateway",
            "--org",
            "coldtrans",
            "--public-key",
            &gateway,
        ],
    );
    run(
        "maker",
        &[
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            "SIM-LOT",
            "--expiry",
            "20381231",
            "--product",
            "Vaccine",
            "--site",
            &maker_gln,
            "--quantity",
            "1",
        ],
    );
    let lot = format!("{GTIN}/SIM-LOT");
    run(
        "maker",
        &[
            "shipment",
            "create",
            "--id",
            shipment,
            "--from",
            &maker_gln,
            "--to",
            &carrier_gln,
            "--lot",
            &lot,
        ],
    );
    run(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            shipment,
            "--device",
            device,
        ],
    );
    run(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            shipment,
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    run("carrier", &["shipment", "accept", "--id", shipment]);
    node
}

/// Starts `coldchain gateway` with `sources` (TOML `[[mqtt]]`/`[[serial]]`
/// tables) for `device` on `shipment`; its log is `dir/gateway.log`.
fn start_gateway(
    dir: &Path,
    node: &NodeProcess,
    sources: &str,
    shipment: &str,
    device: &str,
) -> Reaper {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "key_file = {:?}\nrest_url = {:?}\nqueue_path = {:?}\nmetrics_bind = \"127.0.0.1:{}\"\n\
             [batching]\nmax_readings = 5\nmax_age_ms = 200\n\
             {sources}\n\
             [devices.{device}]\norg = \"coldtrans\"\nshipment = \"{shipment}\"\n",
            dir.join("keys/gateway.priv"),
            node.url,
            dir.join("queue.sqlite"),
            free_port(),
        ),
    )
    .unwrap();
    Reaper(
        Command::new(BIN)
            .args(["gateway", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("gateway.log")).unwrap())
            .spawn()
            .expect("start coldchain gateway"),
    )
}

/// The N of the `sent N readings …` line.
fn sent_count(printed: &str) -> u64 {
    printed
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("simulate prints `sent N readings …`: {printed}"))
}

/// Waits (up to 60 s) until the shipment's thermal record counts `expected`
/// readings; returns the count it reached.
fn recorded(node: &NodeProcess, shipment: &str, expected: u64) -> u64 {
    let address = RecordKind::ShipmentThermal.address(shipment);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = state::<ThermalRecord>(&node.url, &address)
            .map(|t| t.get_reading_count())
            .unwrap_or(0);
        if count >= expected || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_second_simulate_run_goes_on_after_the_first_runs_sequences() {
    let (mqtt_host, mqtt_port) = broker();
    let dir = tempfile::tempdir().unwrap();
    let node = ledger_with_shipment(dir.path(), "SHP-AGAIN", "AGAIN-1");
    let prefix = format!("simagain{}", std::process::id());
    let _gateway = start_gateway(
        dir.path(),
        &node,
        &format!(
            "[[mqtt]]\nhost = {mqtt_host:?}\nport = {mqtt_port}\nclient_id = \"{prefix}-gw\"\ntopic_prefix = {prefix:?}\n"
        ),
        "SHP-AGAIN",
        "AGAIN-1",
    );
    // The gateway subscribes before the simulator publishes (QoS 1 from then on).
    std::thread::sleep(Duration::from_secs(1));
    let state_file = dir.path().join("sim-state/sequences.txt");
    let simulate = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args([
                "simulate",
                "--devices",
                "1",
                "--device-prefix",
                "AGAIN-",
                "--rate",
                "10",
                "--duration-s",
                "1",
                "--org",
                "coldtrans",
                "--topic-prefix",
                &prefix,
                "--mqtt-host",
                &mqtt_host,
                "--mqtt-port",
                &mqtt_port.to_string(),
                "--state",
            ])
            .arg(&state_file)
            .args(extra)
            .output()
            .expect("run coldchain simulate");
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "simulate failed: {printed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed
    };
    let first = simulate(&[]);
    assert!(first.contains("sequences start at 1"), "{first}");
    let first_sent = sent_count(&first);
    let saved = std::fs::read_to_string(&state_file).expect("state file written");
    assert!(
        saved.contains(&format!("AGAIN-1 {first_sent}")),
        "state holds the last sequence {first_sent}: {saved}"
    );
    assert_eq!(recorded(&node, "SHP-AGAIN", first_sent), first_sent);

    let second = simulate(&[]);
    assert!(
        second.contains(&format!("AGAIN-1 from {}", first_sent + 1)),
        "the second run says where it goes on: {second}"
    );
    let total = first_sent + sent_count(&second);
    assert_eq!(
        recorded(&node, "SHP-AGAIN", total),
        total,
        "the second run's readings are taken, not refused as out_of_order; gateway log:\n{}",
        std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
    );

    // --start-sequence wins over the state file, which then records the new run.
    let third = simulate(&["--start-sequence", "5000"]);
    assert!(third.contains("sequences start at 5000"), "{third}");
    let third_sent = sent_count(&third);
    let total = total + third_sent;
    assert_eq!(recorded(&node, "SHP-AGAIN", total), total);
    let saved = std::fs::read_to_string(&state_file).expect("state file");
    assert!(
        saved.contains(&format!("AGAIN-1 {}", 5000 + third_sent - 1)),
        "{saved}"
    );
}

#[test]
fn serial_simulate_waits_for_the_gateway_to_open_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = ledger_with_shipment(dir.path(), "SHP-PTY", "PTY-1");
    let mut simulate = Reaper(
        Command::new(BIN)
            .args([
                "simulate",
                "--transport",
                "serial",
                "--devices",
                "1",
                "--device-prefix",
                "PTY-",
                "--rate",
                "10",
                "--duration-s",
                "1",
                "--no-state",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start coldchain simulate"),
    );
    let mut lines = BufReader::new(simulate.0.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let path = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("simulate ended before naming its pty: {printed}"))
            .expect("stdout line");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("waiting for a reader to open ") {
            break rest.split_whitespace().next().expect("a path").to_string();
        }
    };
    assert!(path.starts_with("/dev/pts/"), "{printed}");
    assert!(
        !printed.contains("sent "),
        "nothing is sent before a reader: {printed}"
    );
    // Longer than the whole run: without the wait, every reading would be gone by now.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        simulate.0.try_wait().expect("simulate status").is_none(),
        "simulate still waits for its reader"
    );
    let _gateway = start_gateway(
        dir.path(),
        &node,
        &format!("[[serial]]\npath = {path:?}\nbaud = 115200\n"),
        "SHP-PTY",
        "PTY-1",
    );
    for line in lines {
        let line = line.expect("stdout line");
        printed.push_str(&line);
        printed.push('\n');
    }
    let status = simulate.0.wait().expect("simulate ends");
    assert!(status.success(), "{printed}");
    assert!(
        printed.contains(&format!("{path} is open; sending")),
        "{printed}"
    );
    let sent = sent_count(&printed);
    assert!(sent >= 5, "{printed}");
    assert_eq!(
        recorded(&node, "SHP-PTY", sent),
        sent,
        "every reading sent on the line reaches the chain; gateway log:\n{}",
        std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
    );
}
