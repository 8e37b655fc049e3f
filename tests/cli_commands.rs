//! End to end: every participant subcommand of `coldchain`, run as a process
//! against a real `coldchain node` process, including refusals and their
//! messages as the transaction processors word them.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coldchain");
const GTIN: &str = "09501101530003";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

struct NodeProcess {
    child: Child,
    url: String,
    component: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(dir: &Path, admin_public_key: &str) -> NodeProcess {
    let genesis = dir.join("genesis.toml");
    std::fs::write(
        &genesis,
        format!("[settings]\n\"coldchain.admins\" = \"{admin_public_key}\"\n"),
    )
    .unwrap();
    let rest = free_port();
    let component = free_port();
    let child = Command::new(BIN)
        .args(["node", "--data-dir"])
        .arg(dir.join("node"))
        .args(["--rest-api", &format!("127.0.0.1:{rest}")])
        .args(["--component", &format!("tcp://127.0.0.1:{component}")])
        .arg("--genesis")
        .arg(&genesis)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coldchain node");
    let url = format!("http://127.0.0.1:{rest}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", rest)).is_err() {
        assert!(Instant::now() < deadline, "node did not open its REST API");
        std::thread::sleep(Duration::from_millis(100));
    }
    NodeProcess {
        child,
        url,
        component: format!("tcp://127.0.0.1:{component}"),
    }
}

/// Runs the CLI with a key and node URL; returns the process output.
struct Cli<'a> {
    url: &'a str,
    keys: PathBuf,
}

impl Cli<'_> {
    fn run(&self, key: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--url", self.url, "--key"])
            .arg(self.keys.join(format!("{key}.priv")))
            .output()
            .expect("run coldchain")
    }

    fn ok(&self, key: &str, args: &[&str]) -> String {
        let out = self.run(key, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "`coldchain {}` as {key} failed:\n{}\n{}",
            args.join(" "),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Expects a refusal whose message contains `needle` (case-insensitive).
    fn refused(&self, key: &str, args: &[&str], needle: &str) -> String {
        let out = self.run(key, args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "`coldchain {}` as {key} should have been refused",
            args.join(" ")
        );
        assert!(
            stderr.to_lowercase().contains(&needle.to_lowercase()),
            "refusal of `coldchain {}` should mention {needle:?}, got: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.contains("refused by the ledger"),
            "refusal should say the ledger refused: {stderr}"
        );
        stderr
    }
}

fn keygen(dir: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["keygen", name, "--json", "--key-dir"])
        .arg(dir)
        .output()
        .expect("keygen");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("keygen --json prints JSON");
    json["public_key"].as_str().expect("public_key").to_string()
}

fn gln(body: &str) -> String {
    let digits: Vec<u32> = body.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| d * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "alice");
    let again = Command::new(BIN)
        .args(["keygen", "alice", "--key-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn every_participant_command_commits_or_is_refused_with_the_processors_reason() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let names = [
        "admin",
        "maker",
        "carrier",
        "pharmacy",
        "regulator",
        "bank",
        "hospital",
        "gateway",
        "stranger",
    ];
    let public: std::collections::BTreeMap<&str, String> =
        names.iter().map(|n| (*n, keygen(&keys, n))).collect();
    let node = start_node(dir.path(), &public["admin"]);
    let cli = Cli {
        url: &node.url,
        keys: keys.clone(),
    };

    let maker_gln = gln("950110100001");
    let carrier_gln = gln("950110100002");
    let pharmacy_gln = gln("950110100004");
    let bank_gln = gln("950110100006");
    let hospital_gln = gln("950110100007");
    let orgs = [
        ("maker", "pharmaco", "manufacturer", &maker_gln),
        ("carrier", "coldtrans", "carrier", &carrier_gln),
        ("pharmacy", "citypharm", "pharmacy", &pharmacy_gln),
        ("regulator", "agency", "regulator", &gln("950110100005")),
        ("bank", "bloodbank", "blood-bank", &bank_gln),
        ("hospital", "cityhosp", "hospital", &hospital_gln),
    ];

    // Only network admins create organisations.
    cli.refused(
        "stranger",
        &[
            "org",
            "create",
            "--id",
            "rogue",
            "--name",
            "Rogue",
            "--role",
            "manufacturer",
        ],
        "admin",
    );
    for (key, org, role, site) in orgs {
        cli.ok(
            "admin",
            &["org", "create", "--id", org, "--name", org, "--role", role],
        );
        cli.ok(
            "admin",
            &[
                "org",
                "add-agent",
                "--org",
                org,
                "--public-key",
                &public[key],
                "--name",
                key,
                "--role",
                role,
                "--role",
                "admin",
            ],
        );
        cli.ok(
            key,
            &[
                "org", "add-site", "--org", org, "--gln", site, "--name", "main",
            ],
        );
    }
    // A wrong GLN check digit is caught before anything is signed.
    let bad = Command::new(BIN)
        .args([
            "org",
            "add-site",
            "--org",
            "pharmaco",
            "--gln",
            "9501101000010",
            "--name",
            "x",
            "--url",
            &node.url,
            "--key",
        ])
        .arg(keys.join("maker.priv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .to_lowercase()
        .contains("check digit"));

    cli.ok(
        "carrier",
        &[
            "device",
            "register",
            "--id",
            "LOGGER-1",
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
            &public["gateway"],
        ],
    );

    // Lots: only manufacturers create them.
    cli.refused(
        "carrier",
        &[
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            "L1",
            "--expiry",
            "20281231",
            "--quantity",
            "2",
            "--serial",
            "S1",
            "--serial",
            "S2",
            "--site",
            &carrier_gln,
            "--product",
            "Vaccine",
        ],
        "manufacturer",
    );
    cli.ok(
        "maker",
        &[
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            "L1",
            "--expiry",
            "20281231",
            "--quantity",
            "2",
            "--serial",
            "S1",
            "--serial",
            "S2",
            "--site",
            &maker_gln,
            "--product",
            "Vaccine",
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
            "L2",
            "--expiry",
            "20281231",
            "--quantity",
            "1",
            "--serial",
            "T1",
            "--site",
            &maker_gln,
            "--product",
            "Vaccine",
        ],
    );

    // Bulk import from CSV, one bad line refused with its line number.
    let csv = dir.path().join("lots.csv");
    std::fs::write(
        &csv,
        format!("gtin,lot,expiry,quantity,profile,site_gln,product_name,serials\n{GTIN},L3,20281231,2,refrigerated,{maker_gln},Vaccine,U1;U2\n{GTIN},L4,20281231,1,frozen,{maker_gln},Plasma,V1\n"),
    )
    .unwrap();
    cli.ok("maker", &["lot", "import", csv.to_str().unwrap()]);

    // Shipment and the two-step hand-off.
    let lot1 = format!("{GTIN}/L1");
    cli.ok(
        "maker",
        &[
            "shipment",
            "create",
            "--id",
            "SHP-1",
            "--from",
            &maker_gln,
            "--to",
            &pharmacy_gln,
            "--lot",
            &lot1,
        ],
    );
    cli.ok(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            "SHP-1",
            "--device",
            "LOGGER-1",
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-1",
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.ok("maker", &["shipment", "cancel", "--id", "SHP-1"]);
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-1",
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.refused(
        "pharmacy",
        &["shipment", "accept", "--id", "SHP-1"],
        "coldtrans",
    );
    cli.ok(
        "carrier",
        &[
            "shipment",
            "reject",
            "--id",
            "SHP-1",
            "--reason",
            "truck not ready",
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-1",
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.ok("carrier", &["shipment", "accept", "--id", "SHP-1"]);
    cli.ok(
        "carrier",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-1",
            "--to-org",
            "citypharm",
            "--at",
            &pharmacy_gln,
        ],
    );
    cli.ok("pharmacy", &["shipment", "accept", "--id", "SHP-1"]);

    // Dispensing: once per pack.
    cli.ok(
        "pharmacy",
        &[
            "dispense",
            "--gtin",
            GTIN,
            "--serial",
            "S1",
            "--site",
            &pharmacy_gln,
        ],
    );
    cli.refused(
        "pharmacy",
        &[
            "dispense",
            "--gtin",
            GTIN,
            "--serial",
            "S1",
            "--site",
            &pharmacy_gln,
        ],
        "already",
    );

    // Quarantine, release, recall: by role.
    cli.refused(
        "pharmacy",
        &[
            "lot",
            "quarantine",
            "--gtin",
            GTIN,
            "--lot",
            "L2",
            "--reason",
            "why not",
        ],
        "inspector",
    );
    cli.ok(
        "regulator",
        &[
            "lot",
            "quarantine",
            "--gtin",
            GTIN,
            "--lot",
            "L2",
            "--reason",
            "inspection",
        ],
    );
    cli.ok(
        "regulator",
        &[
            "lot",
            "release",
            "--gtin",
            GTIN,
            "--lot",
            "L2",
            "--reason",
            "inspection passed",
        ],
    );
    cli.ok(
        "maker",
        &[
            "lot",
            "recall",
            "--gtin",
            GTIN,
            "--lot",
            "L2",
            "--reason",
            "label error",
        ],
    );
    cli.ok(
        "regulator",
        &[
            "lot",
            "destroy",
            "--gtin",
            GTIN,
            "--lot",
            "L2",
            "--reason",
            "destroyed under supervision",
        ],
    );

    // Verification reads the ledger and gives verdicts.
    let verify = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .arg("verify")
            .args(args)
            .args(["--url", &node.url, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("verify --json prints JSON")
    };
    assert_eq!(
        verify(&[&format!("/01/{GTIN}/10/L1/21/S2")])["verdict"],
        "authentic_in_spec"
    );
    assert_eq!(
        verify(&[&format!("/01/{GTIN}/10/L1/21/S1")])["verdict"],
        "already_dispensed"
    );
    assert_eq!(
        verify(&["--gtin", GTIN, "--serial", "NOPE", "--lot", "L1"])["verdict"],
        "unknown"
    );

    // Emergency blood.
    cli.ok(
        "bank",
        &[
            "blood",
            "register",
            "--din",
            "A999926000001",
            "--component",
            "red-cells",
            "--group",
            "O-",
            "--expiry",
            "20281231",
            "--site",
            &bank_gln,
        ],
    );
    cli.ok(
        "bank",
        &[
            "blood",
            "register",
            "--din",
            "A999926000002",
            "--component",
            "red-cells",
            "--group",
            "A+",
            "--expiry",
            "20281231",
            "--site",
            &bank_gln,
        ],
    );
    cli.ok(
        "hospital",
        &[
            "blood",
            "request",
            "--id",
            "REQ-1",
            "--component",
            "red-cells",
            "--group",
            "O-",
            "--units",
            "1",
            "--hospital",
            &hospital_gln,
        ],
    );
    cli.refused(
        "bank",
        &[
            "blood",
            "offer",
            "--request",
            "REQ-1",
            "--offer",
            "OF-0",
            "--unit",
            "A999926000002",
        ],
        "compatib",
    );
    cli.ok(
        "bank",
        &[
            "blood",
            "offer",
            "--request",
            "REQ-1",
            "--offer",
            "OF-1",
            "--unit",
            "A999926000001",
        ],
    );
    cli.ok(
        "hospital",
        &[
            "blood",
            "accept",
            "--request",
            "REQ-1",
            "--offer",
            "OF-1",
            "--shipment",
            "SHP-BLOOD-1",
        ],
    );
    cli.refused(
        "hospital",
        &["blood", "deliver", "--request", "REQ-1"],
        "hand-off",
    );
    cli.ok(
        "bank",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-BLOOD-1",
            "--to-org",
            "cityhosp",
            "--at",
            &hospital_gln,
        ],
    );
    cli.ok("hospital", &["shipment", "accept", "--id", "SHP-BLOOD-1"]);
    cli.ok("hospital", &["blood", "deliver", "--request", "REQ-1"]);

    // Revoked keys can do nothing.
    cli.ok(
        "admin",
        &[
            "org",
            "revoke-agent",
            "--public-key",
            &public["carrier"],
            "--reason",
            "laptop stolen",
        ],
    );
    cli.refused(
        "carrier",
        &[
            "device",
            "register",
            "--id",
            "LOGGER-2",
            "--org",
            "coldtrans",
            "--calibration-due",
            "20281231",
        ],
        "revoked",
    );

    // --json output is machine-readable.
    let out = cli.run(
        "carrier",
        &[
            "device", "revoke", "--id", "LOGGER-1", "--reason", "x", "--json",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints JSON even on refusal");
    assert_eq!(json["status"], "INVALID");

    // `watch` sees the chain's blocks over the component endpoint (catch-up from genesis is not
    // requested, so trigger one more block while it listens).
    let mut watcher = Command::new(BIN)
        .args([
            "watch",
            "--blocks",
            "1",
            "--json",
            "--connect",
            &node.component,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    cli.ok(
        "maker",
        &[
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            "L9",
            "--expiry",
            "20281231",
            "--quantity",
            "1",
            "--site",
            &maker_gln,
            "--product",
            "Vaccine",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = watcher.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "watch saw no block");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut printed = String::new();
    use std::io::Read;
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert!(
        printed.contains("sawtooth/block-commit"),
        "watch printed: {printed}"
    );
}
