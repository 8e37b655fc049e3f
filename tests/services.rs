//! The service subcommands of the one `coldchain` binary, as processes:
//! `coldchain simulate` publishes logger readings to the MQTT broker,
//! `coldchain gateway` collects, signs and submits them, and `coldchain node`
//! commits them to the shipment's thermal record; a reading the simulator sent
//! is recorded exactly once. Uses the Mosquitto on `COLDCHAIN_TEST_MQTT`
//! (default 127.0.0.1:1883; `scripts/test.sh` starts one) with a topic prefix
//! of this test's own.
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::ThermalRecord;

use support::{free_port, gln, keygen, start_node, state, Cli, Families, Reaper, BIN};

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

#[test]
fn simulate_and_gateway_subcommands_bring_mqtt_readings_onto_the_chain_once() {
    let (mqtt_host, mqtt_port) = broker();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let maker = keygen(&keys, "maker");
    let carrier = keygen(&keys, "carrier");
    let gateway = keygen(&keys, "gateway");
    let node = start_node(dir.path(), &admin, Families::InProcess);
    let cli = Cli {
        url: node.url.clone(),
        keys: keys.clone(),
    };
    let (maker_gln, carrier_gln) = (gln("950110100001"), gln("950110100002"));
    for (key, public, org, role, site) in [
        ("maker", &maker, "pharmaco", "manufacturer", &maker_gln),
        ("carrier", &carrier, "coldtrans", "carrier", &carrier_gln),
    ] {
        cli.onboard(key, public, org, role, site);
    }
    cli.ok(
        "carrier",
        &[
            "device",
            "register",
            "--id",
            "SIM-1",
            "--org",
            "coldtrans",
            "--calibration-due",
            "20381231",
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
            &gateway,
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
    cli.ok(
        "maker",
        &[
            "shipment",
            "create",
            "--id",
            "SHP-SIM",
            "--from",
            &maker_gln,
            "--to",
            &carrier_gln,
            "--lot",
            &lot,
        ],
    );
    cli.ok(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            "SHP-SIM",
            "--device",
            "SIM-1",
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-SIM",
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.ok("carrier", &["shipment", "accept", "--id", "SHP-SIM"]);

    let prefix = format!("svc{}", std::process::id());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "key_file = {:?}\nrest_url = {:?}\nqueue_path = {:?}\nmetrics_bind = \"127.0.0.1:{}\"\n\
             [batching]\nmax_readings = 5\nmax_age_ms = 200\n\
             [[mqtt]]\nhost = {mqtt_host:?}\nport = {mqtt_port}\nclient_id = \"{prefix}-gw\"\ntopic_prefix = {prefix:?}\n\
             [devices.SIM-1]\norg = \"coldtrans\"\nshipment = \"SHP-SIM\"\n",
            keys.join("gateway.priv"),
            node.url,
            dir.path().join("queue.sqlite"),
            free_port(),
        ),
    )
    .unwrap();
    let _gateway = Reaper(
        Command::new(BIN)
            .args(["gateway", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("gateway.log")).unwrap())
            .spawn()
            .expect("start coldchain gateway"),
    );
    // The gateway subscribes before the simulator publishes (QoS 1 from then on).
    std::thread::sleep(Duration::from_secs(1));
    let simulate = Command::new(BIN)
        .args([
            "simulate",
            "--devices",
            "1",
            "--device-prefix",
            "SIM-",
            "--rate",
            "10",
            "--batch",
            "2",
            "--duration-s",
            "2",
            "--org",
            "coldtrans",
            "--topic-prefix",
            &prefix,
            "--mqtt-host",
            &mqtt_host,
            "--mqtt-port",
            &mqtt_port.to_string(),
        ])
        .output()
        .expect("run coldchain simulate");
    let printed = String::from_utf8_lossy(&simulate.stdout);
    assert!(simulate.status.success(), "simulate failed: {printed}");
    let sent: u64 = printed
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("simulate prints `sent N readings …`: {printed}"));
    assert!(sent >= 10, "simulate sent readings: {printed}");

    let address = RecordKind::ShipmentThermal.address("SHP-SIM");
    let deadline = Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        let count = state::<ThermalRecord>(&node.url, &address)
            .map(|t| t.get_reading_count())
            .unwrap_or(0);
        if count >= sent || Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        recorded,
        sent,
        "every simulated reading is on the chain; gateway log:\n{}",
        std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
    );
    // Nothing more arrives later: each reading was recorded once.
    std::thread::sleep(Duration::from_secs(1));
    let thermal: ThermalRecord = state(&node.url, &address).expect("thermal record");
    assert_eq!(thermal.get_reading_count(), sent);
}
