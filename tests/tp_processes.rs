//! End to end: the three families as external transaction-processor
//! processes (`coldchain tp registry|custody|sensor`) connected over ZeroMQ to
//! a `coldchain node` that runs no families itself, processing the full
//! scenario: register, lots, shipments, readings with an excursion, hand-offs,
//! refusing compromised goods, dispensing, recall, emergency blood. Then the
//! same processes surviving a crash (SIGKILL) and restart of the node.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{Lot, Pack, Shipment, ThermalRecord};
use coldchain_processors::signing::Signer;
use support::{gln, keygen, read_log, readings, state, submit_readings, Cli, Families};

const GTIN: &str = "09501101530003";
const FAMILIES: [&str; 3] = [
    "coldchain-registry",
    "coldchain-custody",
    "coldchain-sensor",
];

#[test]
fn the_full_scenario_runs_through_external_tp_processes() {
    support::scenario::run(Families::ExternalProcesses);
}

/// How many times the node whose log is `log` registered an external TP for `family`.
/// How many times `family` registered with the node logging to `log` (the
/// sensor TP registers each of its versions, 1.0 and 1.1: counted by 1.1).
fn registrations(dir: &Path, log: &str, family: &str) -> usize {
    let version = if family == "coldchain-sensor" {
        "1.1"
    } else {
        "1.0"
    };
    read_log(dir, log)
        .lines()
        .filter(|line| {
            line.contains("external transaction processor registered")
                && line.contains(&format!("\"{family}\""))
                && line.contains(&format!("\"{version}\""))
        })
        .count()
}

/// Waits until the node logging to `log` has an external TP for every family.
fn wait_for_external_tps(dir: &Path, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while FAMILIES
        .iter()
        .any(|family| registrations(dir, log, family) == 0)
    {
        assert!(
            Instant::now() < deadline,
            "not every family registered with the node within 60 s; node log:\n{}\nTP logs:\n{}\n{}\n{}",
            read_log(dir, log),
            read_log(dir, "tp-registry"),
            read_log(dir, "tp-custody"),
            read_log(dir, "tp-sensor"),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lot_record(url: &str, lot: &str) -> Option<Lot> {
    state(url, &RecordKind::Lot.address(&goods_key(GTIN, lot)))
}

#[test]
fn external_tps_reregister_after_a_node_crash_and_the_scenario_commits_through_them() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let names = [
        "admin", "maker", "carrier", "pharmacy", "gateway", "stranger",
    ];
    let public: std::collections::BTreeMap<&str, String> =
        names.iter().map(|n| (*n, keygen(&keys, n))).collect();
    let node = support::start_node_external_logged(dir.path(), &public["admin"]);
    wait_for_external_tps(dir.path(), "node-1");
    let cli = Cli {
        url: node.url.clone(),
        keys: keys.clone(),
    };
    let gateway = Signer::from_file(&keys.join("gateway.priv")).unwrap();

    // Before the crash: participants, a lot, a shipment in the carrier's
    // hands and a first readings batch, each through one of the TPs.
    let maker_gln = gln("950110100001");
    let carrier_gln = gln("950110100002");
    let pharmacy_gln = gln("950110100004");
    for (key, org, role, site) in [
        ("maker", "pharmaco", "manufacturer", &maker_gln),
        ("carrier", "coldtrans", "carrier", &carrier_gln),
        ("pharmacy", "citypharm", "pharmacy", &pharmacy_gln),
    ] {
        cli.onboard(key, &public[key], org, role, site);
    }
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
    let create_lot = |lot: &str, serials: &[&str]| {
        let mut args = vec![
            "lot",
            "create",
            "--gtin",
            GTIN,
            "--lot",
            lot,
            "--expiry",
            "20281231",
            "--product",
            "Vaccine",
            "--site",
            &maker_gln,
        ];
        let quantity = serials.len().to_string();
        args.extend(["--quantity", &quantity]);
        for serial in serials {
            args.extend(["--serial", serial]);
        }
        cli.ok("maker", &args);
    };
    create_lot("L1", &["S1", "S2"]);
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
    cli.ok("carrier", &["shipment", "accept", "--id", "SHP-1"]);
    let shipment: Shipment =
        state(&node.url, &RecordKind::Shipment.address("SHP-1")).expect("SHP-1 in state");
    let t0 = shipment.get_created_at_s();
    let first = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(1, t0, &[500, 510, 520]),
    );
    assert_eq!(first["status"], "COMMITTED", "{first}");

    // The crash: SIGKILL, then the node comes back on the same data directory
    // and endpoints, again running no family itself. Nobody restarts the TPs.
    let node = support::restart_node_external(dir.path(), node, "node-2");
    wait_for_external_tps(dir.path(), "node-2");
    for family in FAMILIES {
        assert_eq!(
            registrations(dir.path(), "node-1", family),
            1,
            "{family} registered more than once before the crash"
        );
    }
    // The TP processes are the ones started before the crash: each noticed
    // the lost connection and registered a second time by itself.
    for (family, version) in [("registry", "1.0"), ("custody", "1.0"), ("sensor", "1.1")] {
        // The node logs a registration before the TP has read the node's
        // answer and logged its own line: give the TP a moment.
        let registered = format!("registered coldchain-{family} {version}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while read_log(dir.path(), &format!("tp-{family}"))
            .matches(&registered)
            .count()
            < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = read_log(dir.path(), &format!("tp-{family}"));
        assert!(
            log.contains("validator connection lost"),
            "tp {family} did not notice the crash:\n{log}"
        );
        assert_eq!(
            log.matches(&registered).count(),
            2,
            "tp {family} should have registered twice (start, after the restart):\n{log}"
        );
    }

    // What committed before the crash is still there.
    assert_eq!(
        lot_record(&node.url, "L1")
            .expect("lot L1 survives")
            .get_custodian_org_id(),
        "coldtrans"
    );
    let thermal: ThermalRecord =
        state(&node.url, &RecordKind::ShipmentThermal.address("SHP-1")).expect("thermal record");
    assert_eq!(thermal.get_reading_count(), 3);

    // The rest of the scenario. The restarted node has no in-process family,
    // so each commit below was executed by a re-registered external TP.
    // Sensor: the logger's sequence continues where the chain left it...
    let second = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(4, t0 + 3, &[530, 540, 550]),
    );
    assert_eq!(second["status"], "COMMITTED", "{second}");
    // ...and a replay is refused by the sensor family's rule.
    let replay = submit_readings(
        &node.url,
        &gateway,
        "coldtrans",
        "LOGGER-1",
        "SHP-1",
        readings(4, t0 + 3, &[530, 540, 550]),
    );
    assert_eq!(replay["status"], "INVALID", "{replay}");
    assert!(
        replay["invalid_transactions"][0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("readings already recorded"),
        "{replay}"
    );
    // The refusal was decided by the sensor TP process, after it re-registered.
    let sensor_log = read_log(dir.path(), "tp-sensor");
    let after_restart = sensor_log
        .rfind("registered coldchain-sensor 1.1")
        .expect("the sensor TP registered");
    assert!(
        sensor_log[after_restart..].contains("readings already recorded"),
        "the replay was not refused by the external sensor TP:\n{sensor_log}"
    );
    let thermal: ThermalRecord =
        state(&node.url, &RecordKind::ShipmentThermal.address("SHP-1")).expect("thermal record");
    assert_eq!(thermal.get_reading_count(), 6);
    assert_eq!(thermal.get_max_cdeg(), 550);

    // Custody: delivery to the pharmacy and dispensing a pack.
    cli.refused(
        "pharmacy",
        &["shipment", "accept", "--id", "SHP-1"],
        "no pending hand-off",
    );
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
    let lot = lot_record(&node.url, "L1").expect("lot L1");
    assert_eq!(lot.get_custodian_org_id(), "citypharm");
    assert_eq!(lot.get_dispensed_count(), 1);
    let pack: Pack =
        state(&node.url, &RecordKind::Pack.address(&goods_key(GTIN, "S1"))).expect("pack S1");
    assert!(pack.get_dispensed());

    // Registry: a new lot, and only network admins create organisations.
    create_lot("L2", &["T1"]);
    assert!(lot_record(&node.url, "L2").is_some());
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
        "not a network admin",
    );
}
