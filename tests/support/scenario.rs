//! The full cold-chain scenario, driven from outside: every participant
//! command of the CLI as a process, plus readings transactions signed as the
//! sensor gateway signs them. Run against in-process or external families.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{Lot, LotStatus, Shipment, ThermalRecord};
use coldchain_processors::signing::Signer;

use super::{gln, keygen, readings, start_node, state, submit_readings, Cli, Families, BIN};

const GTIN: &str = "09501101530003";

fn as_refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

pub fn run(families: Families) {
    let dir = tempfile::tempdir().unwrap();
    let public = cast_keys(dir.path());
    let node = start_node(dir.path(), &public["admin"], families);
    play(
        &Ledger {
            url: node.url.clone(),
            component: node.component.clone(),
        },
        dir.path(),
        &public,
    );
}

/// The key names the scenario signs with.
pub const CAST: [&str; 9] = [
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

/// Makes the cast's keys in `dir/keys`; returns name → public key. The
/// ledger the scenario plays on must name `admin` in `coldchain.admins`.
pub fn cast_keys(dir: &std::path::Path) -> std::collections::BTreeMap<&'static str, String> {
    let keys = dir.join("keys");
    CAST.iter().map(|n| (*n, keygen(&keys, n))).collect()
}

/// Where the scenario plays: any Sawtooth REST API and component endpoint.
pub struct Ledger {
    pub url: String,
    pub component: String,
}

/// Plays the whole scenario on `node`, signing with the keys of [`cast_keys`]
/// in `dir/keys`; asserts every outcome, refusal reason and verdict.
pub fn play(
    node: &Ledger,
    dir: &std::path::Path,
    public: &std::collections::BTreeMap<&'static str, String>,
) {
    let keys = dir.join("keys");
    let cli = Cli {
        url: node.url.clone(),
        keys: keys.clone(),
    };
    let gateway = Signer::from_file(&keys.join("gateway.priv")).unwrap();
    let stranger = Signer::from_file(&keys.join("stranger.priv")).unwrap();

    let maker_gln = gln("950110100001");
    let carrier_gln = gln("950110100002");
    let pharmacy_gln = gln("950110100004");
    let bank_gln = gln("950110100006");
    let hospital_gln = gln("950110100007");
    let regulator_gln = gln("950110100005");
    let orgs = [
        ("maker", "pharmaco", "manufacturer", &maker_gln),
        ("carrier", "coldtrans", "carrier", &carrier_gln),
        ("pharmacy", "citypharm", "pharmacy", &pharmacy_gln),
        ("regulator", "agency", "regulator", &regulator_gln),
        ("bank", "bloodbank", "blood-bank", &bank_gln),
        ("hospital", "cityhosp", "hospital", &hospital_gln),
    ];

    // External TPs register asynchronously: wait until the registry family answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cli.run(
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
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        if stderr.contains("refused by the ledger") {
            // Only network admins create organisations.
            assert!(stderr.contains("admin"), "{stderr}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry family never answered: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    for (key, org, role, site) in orgs {
        cli.onboard(key, &public[key], org, role, site);
    }
    // A wrong GLN check digit is caught before anything is signed.
    let bad = cli.run(
        "maker",
        &[
            "org",
            "add-site",
            "--org",
            "pharmaco",
            "--gln",
            "9501101000010",
            "--name",
            "x",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .to_lowercase()
        .contains("check digit"));

    for device in ["LOGGER-1", "LOGGER-2"] {
        cli.ok(
            "carrier",
            &[
                "device",
                "register",
                "--id",
                device,
                "--org",
                "coldtrans",
                "--calibration-due",
                "20281231",
            ],
        );
    }
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
    let lot = |id: &str, serials: &[&str], site: &str| -> Vec<String> {
        let mut args: Vec<String> = [
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            id,
            "--expiry",
            "20281231",
            "--product",
            "Vaccine",
            "--site",
            site,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--quantity".to_string(), serials.len().to_string()]);
        for serial in serials {
            args.extend(["--serial".to_string(), serial.to_string()]);
        }
        args
    };
    cli.refused(
        "carrier",
        &as_refs(&lot("L1", &["S1", "S2"], &carrier_gln)),
        "manufacturer",
    );
    cli.ok("maker", &as_refs(&lot("L1", &["S1", "S2"], &maker_gln)));
    cli.ok("maker", &as_refs(&lot("L2", &["T1"], &maker_gln)));
    cli.ok("maker", &as_refs(&lot("L5", &["W1"], &maker_gln)));

    // Bulk import from CSV.
    let csv = dir.join("lots.csv");
    std::fs::write(
        &csv,
        format!("gtin,lot,expiry,quantity,profile,site_gln,product_name,serials\n{GTIN},L3,20281231,2,refrigerated,{maker_gln},Vaccine,U1;U2\n{GTIN},L4,20281231,1,frozen,{maker_gln},Plasma,V1\n"),
    )
    .unwrap();
    cli.ok("maker", &["lot", "import", csv.to_str().unwrap()]);

    // Shipment and the two-step hand-off: propose, cancel, reject, accept.
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
    // Detach and attach again: a logger moves between shipments only detached.
    cli.ok(
        "carrier",
        &[
            "device",
            "detach",
            "--shipment",
            "SHP-1",
            "--device",
            "LOGGER-1",
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

    // Readings with a short excursion that stays within budget.
    let shipment: Shipment =
        state(&node.url, &RecordKind::Shipment.address("SHP-1")).expect("SHP-1 in state");
    let t0 = shipment.get_created_at_s();
    let status = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(1, t0, &[500, 520, 910, 540, 500]),
    );
    assert_eq!(status["status"], "COMMITTED", "{status}");
    // The same readings again are recognisably already recorded.
    let replay = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(1, t0, &[500, 520, 910, 540, 500]),
    );
    assert_eq!(replay["status"], "INVALID");
    assert!(
        replay["invalid_transactions"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("readings already recorded"),
        "{replay}"
    );
    // Readings signed by a key that is not an authorised gateway are refused.
    let rogue = submit_readings(
        &node.url,
        &stranger,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(6, t0, &[500]),
    );
    assert_eq!(rogue["status"], "INVALID");
    assert!(
        rogue["invalid_transactions"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("gateway"),
        "{rogue}"
    );
    let thermal: ThermalRecord =
        state(&node.url, &RecordKind::ShipmentThermal.address("SHP-1")).expect("thermal record");
    assert_eq!(thermal.get_reading_count(), 5);
    assert_eq!(thermal.get_max_cdeg(), 910);
    assert!(!thermal.get_compromised());

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

    // A second lot whose logger reports a long hot spell: compromised, refused, quarantined.
    let lot5 = format!("{GTIN}/L5");
    cli.ok(
        "maker",
        &[
            "shipment",
            "create",
            "--id",
            "SHP-2",
            "--from",
            &maker_gln,
            "--to",
            &pharmacy_gln,
            "--lot",
            &lot5,
        ],
    );
    cli.ok(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            "SHP-2",
            "--device",
            "LOGGER-2",
        ],
    );
    cli.ok(
        "maker",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-2",
            "--to-org",
            "coldtrans",
            "--at",
            &maker_gln,
        ],
    );
    cli.ok("carrier", &["shipment", "accept", "--id", "SHP-2"]);
    let shipment: Shipment =
        state(&node.url, &RecordKind::Shipment.address("SHP-2")).expect("SHP-2 in state");
    let t1 = shipment.get_created_at_s();
    // A second logger in SHP-2 reads in range (LOGGER-1 came free when SHP-1 was
    // delivered): sensor family 1.1 keeps one track per logger, so its readings
    // cannot hide LOGGER-2's breach below, on the real validator as on the node.
    cli.ok(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            "SHP-2",
            "--device",
            "LOGGER-1",
        ],
    );
    let status = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-2",
        readings(6, t0.max(t1) + 10, &[500, 510, 520]),
    );
    assert_eq!(status["status"], "COMMITTED", "{status}");
    let hot: Vec<i32> = std::iter::repeat_n(1500, 55).collect();
    let mut batch: Vec<_> = readings(1, t1, &[500; 5])
        .into_iter()
        .map(|mut r| {
            r.set_time_s(t1);
            r
        })
        .collect();
    batch.extend(readings(6, t1 + 1, &hot).into_iter().map(|mut r| {
        r.set_time_s(t1 + 1);
        r
    }));
    let status = submit_readings(&node.url, &gateway, "coldtrans", "LOGGER-2", "SHP-2", batch);
    assert_eq!(status["status"], "COMMITTED", "{status}");
    let two_loggers: ThermalRecord =
        state(&node.url, &RecordKind::ShipmentThermal.address("SHP-2")).expect("SHP-2 thermal");
    let tracks: Vec<&str> = two_loggers
        .get_tracks()
        .iter()
        .map(|t| t.get_device_id())
        .collect();
    assert_eq!(tracks, ["LOGGER-1", "LOGGER-2"]);
    assert!(
        two_loggers
            .get_compromised_reason()
            .ends_with("(logger LOGGER-2)"),
        "{}",
        two_loggers.get_compromised_reason()
    );
    let lot_five: Lot =
        state(&node.url, &RecordKind::Lot.address(&goods_key(GTIN, "L5"))).expect("lot L5");
    assert_eq!(lot_five.get_status(), LotStatus::COMPROMISED);
    cli.ok(
        "carrier",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-2",
            "--to-org",
            "citypharm",
            "--at",
            &pharmacy_gln,
        ],
    );
    cli.refused(
        "pharmacy",
        &["shipment", "accept", "--id", "SHP-2"],
        "compromised",
    );
    cli.ok(
        "pharmacy",
        &["shipment", "accept", "--id", "SHP-2", "--into-quarantine"],
    );

    // Dispensing: once per pack; never a pack of a lot in quarantine.
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
    cli.refused(
        "pharmacy",
        &[
            "dispense",
            "--gtin",
            GTIN,
            "--serial",
            "W1",
            "--site",
            &pharmacy_gln,
        ],
        "quarantined",
    );

    // Quarantine, release, recall, destroy: by role.
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

    // Verification reads the ledger and gives verdicts, each with its exit
    // code (0 authentic, 3 unknown, 4 do not dispense; see `verify --help`).
    let verify = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .arg("verify")
            .args(args)
            .args(["--url", &node.url, "--json"])
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("verify --json prints JSON");
        let expected_code = match json["verdict"].as_str() {
            Some("authentic_in_spec") => 0,
            Some("unknown") => 3,
            Some(_) => 4,
            None => panic!(
                "verify gave no verdict: {json} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        };
        assert_eq!(
            out.status.code(),
            Some(expected_code),
            "verify exit code for {json}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json
    };
    assert_eq!(
        verify(&["--gtin", GTIN, "--serial", "T1", "--lot", "L2"])["verdict"],
        "recalled"
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
    cli.refused(
        "maker",
        &[
            "lot", "release", "--gtin", GTIN, "--lot", "L2", "--reason", "undo",
        ],
        "destroyed",
    );
    assert_eq!(
        verify(&[&format!("/01/{GTIN}/10/L1/21/S2")])["verdict"],
        "authentic_in_spec"
    );
    assert_eq!(
        verify(&[&format!("/01/{GTIN}/10/L1/21/S1")])["verdict"],
        "already_dispensed"
    );
    assert_eq!(
        verify(&[&format!("/01/{GTIN}/10/L5/21/W1")])["verdict"],
        "compromised"
    );
    assert_eq!(
        verify(&["--gtin", GTIN, "--serial", "NOPE", "--lot", "L1"])["verdict"],
        "unknown"
    );

    // Emergency blood.
    for (din, group) in [("A999926000001", "O-"), ("A999926000002", "A+")] {
        cli.ok(
            "bank",
            &[
                "blood",
                "register",
                "--din",
                din,
                "--component",
                "red-cells",
                "--group",
                group,
                "--expiry",
                "20281231",
                "--site",
                &bank_gln,
            ],
        );
    }
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
    cli.refused(
        "bank",
        &[
            "blood",
            "offer",
            "--request",
            "REQ-1",
            "--offer",
            "OF-2",
            "--unit",
            "A999926000001",
        ],
        "offer",
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

    // Each remaining participant command refused, in the ledger's words.
    let stranger_key = public["stranger"].clone();
    cli.refused(
        "stranger",
        &[
            "org",
            "add-agent",
            "--org",
            "pharmaco",
            "--public-key",
            &stranger_key,
            "--name",
            "mole",
            "--role",
            "manufacturer",
        ],
        "is not a registered agent",
    );
    let other_site = gln("950110100009");
    cli.refused(
        "carrier",
        &[
            "org",
            "add-site",
            "--org",
            "pharmaco",
            "--gln",
            &other_site,
            "--name",
            "x",
        ],
        "not of pharmaco",
    );
    cli.refused(
        "stranger",
        &[
            "org",
            "authorize-gateway",
            "--org",
            "coldtrans",
            "--public-key",
            &stranger_key,
        ],
        "is not a registered agent",
    );
    cli.refused(
        "carrier",
        &[
            "device",
            "attach",
            "--shipment",
            "SHP-1",
            "--device",
            "LOGGER-2",
        ],
        "open shipments only",
    );
    cli.refused(
        "carrier",
        &[
            "device",
            "detach",
            "--shipment",
            "SHP-2",
            "--device",
            "LOGGER-2",
        ],
        "is not attached to shipment SHP-2",
    );
    cli.refused(
        "pharmacy",
        &[
            "lot", "recall", "--gtin", GTIN, "--lot", "L5", "--reason", "rumour",
        ],
        "manufacturer",
    );
    let foreign_csv = dir.join("foreign-lots.csv");
    std::fs::write(
        &foreign_csv,
        format!("gtin,lot,expiry,quantity,profile,site_gln,product_name,serials\n{GTIN},L9,20281231,1,refrigerated,{carrier_gln},Vaccine,Z1\n"),
    )
    .unwrap();
    let import = cli.run("carrier", &["lot", "import", foreign_csv.to_str().unwrap()]);
    let import_out = String::from_utf8_lossy(&import.stdout).to_lowercase();
    assert!(
        !import.status.success()
            && import_out.contains("refused line 2:")
            && import_out.contains("manufacturer"),
        "a carrier's lot import is refused line by line: {import_out}"
    );
    let lot5 = format!("{GTIN}/L5");
    cli.refused(
        "pharmacy",
        &[
            "shipment",
            "create",
            "--id",
            "SHP-9",
            "--from",
            &maker_gln,
            "--to",
            &pharmacy_gln,
            "--lot",
            &lot5,
        ],
        "belongs to organisation pharmaco",
    );
    cli.refused(
        "stranger",
        &[
            "shipment",
            "propose",
            "--id",
            "SHP-2",
            "--to-org",
            "citypharm",
            "--at",
            &carrier_gln,
        ],
        "is not a registered agent",
    );
    cli.refused(
        "carrier",
        &["shipment", "reject", "--id", "SHP-2", "--reason", "no"],
        "has no pending hand-off (it is DELIVERED)",
    );
    cli.refused(
        "carrier",
        &["shipment", "cancel", "--id", "SHP-2"],
        "has no pending hand-off",
    );
    cli.refused(
        "pharmacy",
        &[
            "blood",
            "request",
            "--id",
            "REQ-9",
            "--component",
            "red-cells",
            "--group",
            "O-",
            "--units",
            "1",
            "--hospital",
            &pharmacy_gln,
        ],
        "hospital",
    );
    cli.refused(
        "bank",
        &[
            "blood",
            "accept",
            "--request",
            "REQ-1",
            "--offer",
            "OFFER-1",
            "--shipment",
            "SHP-9",
        ],
        "not of cityhosp",
    );

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
            "LOGGER-3",
            "--org",
            "coldtrans",
            "--calibration-due",
            "20281231",
        ],
        "revoked",
    );

    // --json output is machine-readable, refusals included.
    let out = cli.run(
        "carrier",
        &[
            "device", "revoke", "--id", "LOGGER-1", "--reason", "x", "--json",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints JSON even on refusal");
    assert_eq!(json["status"], "INVALID");

    // `watch` follows blocks over the component endpoint.
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
        "regulator",
        &[
            "lot",
            "quarantine",
            "--gtin",
            GTIN,
            "--lot",
            "L3",
            "--reason",
            "sampling",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = watcher.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = watcher.kill();
            panic!("watch saw no block");
        }
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
    assert!(
        printed.contains("coldchain/lot-status"),
        "watch printed: {printed}"
    );
}
