//! `coldchain readings import` as a user runs it against a running embedded
//! node: a logger's CSV export (Berlin local times, decimal comma, a preamble
//! and a header) becomes signed readings of the device and shipment; a file
//! with bad rows submits nothing and lists every bad row by line; importing the
//! same file again records nothing twice; a longer export adds only its new rows.
mod support;

use std::path::Path;

use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{Device, ThermalRecord};
use jiff::tz::TimeZone;

use support::{gln, keygen, start_node, state, Cli, Families, NodeProcess};

const GTIN: &str = "09501101530003";
const DEVICE: &str = "USB-LOG-1";
const SHIPMENT: &str = "S-USB-1";

/// Carrier `coldtrans` holds shipment `S-USB-1` watched by logger `USB-LOG-1`;
/// the key `importer` is an authorised gateway of `coldtrans`.
fn ledger(dir: &Path) -> (NodeProcess, Cli) {
    let keys = dir.join("keys");
    let admin = keygen(&keys, "admin");
    let maker = keygen(&keys, "maker");
    let carrier = keygen(&keys, "carrier");
    let importer = keygen(&keys, "importer");
    let node = start_node(dir, &admin, Families::InProcess);
    let cli = Cli {
        url: node.url.clone(),
        keys,
    };
    let (maker_gln, carrier_gln) = (gln("950110100001"), gln("950110100002"));
    cli.onboard("maker", &maker, "pharmaco", "manufacturer", &maker_gln);
    cli.onboard("carrier", &carrier, "coldtrans", "carrier", &carrier_gln);
    let device = [
        "device",
        "register",
        "--id",
        DEVICE,
        "--org",
        "coldtrans",
        "--calibration-due",
        "20381231",
    ];
    cli.ok("carrier", &device);
    let grant = [
        "org",
        "authorize-gateway",
        "--org",
        "coldtrans",
        "--public-key",
        &importer,
    ];
    cli.ok("carrier", &grant);
    let lot = [
        "lot",
        "create",
        "--gtin",
        GTIN,
        "--lot",
        "USB-LOT",
        "--expiry",
        "20381231",
        "--product",
        "Vaccine",
        "--site",
        &maker_gln,
        "--quantity",
        "1",
    ];
    cli.ok("maker", &lot);
    let lot_ref = format!("{GTIN}/USB-LOT");
    let shipment = [
        "shipment",
        "create",
        "--id",
        SHIPMENT,
        "--from",
        &maker_gln,
        "--to",
        &carrier_gln,
        "--lot",
        &lot_ref,
    ];
    cli.ok("maker", &shipment);
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
    (node, cli)
}

/// An export of `rows` readings 5 s apart from `start_s`, as a German
/// logger writes it: local Berlin time, `;` between fields, decimal comma.
fn export(start_s: u64, rows: u64) -> String {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let mut text = String::from(
        "Logger USB-LOG-1 Seriennummer 4711\nExport 2026\nDatum/Zeit;Feuchte [%rF];Temperatur [°C]\n",
    );
    for i in 0..rows {
        let at = jiff::Timestamp::from_second((start_s + i * 5) as i64)
            .unwrap()
            .to_zoned(berlin.clone());
        text.push_str(&format!(
            "{};{},5;{},{:02}\n",
            at.strftime("%d.%m.%Y %H:%M:%S"),
            40 + i % 10,
            4 + i % 3,
            (i * 7) % 100
        ));
    }
    text
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn import(cli: &Cli, file: &Path) -> std::process::Output {
    cli.run(
        "importer",
        &[
            "readings",
            "import",
            "--device",
            DEVICE,
            "--shipment",
            SHIPMENT,
            "--columns",
            "time=1,temperature=3,humidity=2",
            "--time-zone",
            "Europe/Berlin",
            "--decimal-comma",
            "--skip-lines",
            "2",
            file.to_str().unwrap(),
        ],
    )
}

fn recorded(cli: &Cli) -> (u64, u64, u64) {
    let device: Device = state(&cli.url, &RecordKind::Device.address(DEVICE)).unwrap();
    let count = state::<ThermalRecord>(&cli.url, &RecordKind::ShipmentThermal.address(SHIPMENT))
        .map_or(0, |t| t.get_reading_count());
    (device.get_last_sequence(), device.get_last_time_s(), count)
}

#[test]
fn a_logger_export_is_recorded_once_and_a_bad_file_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, cli) = ledger(dir.path());
    // Readings must lie after the shipment's creation (just now) and not ahead
    // of the clock by more than 300 s: 5 s apart from one second from now.
    let first = now_s() + 1;
    // One bad temperature and one row out of order: nothing is submitted.
    let mut bad = export(first, 10);
    bad = bad.replacen(";4,", ";warm,", 1);
    let mut lines: Vec<&str> = bad.lines().collect();
    lines.swap(8, 9);
    let bad_file = dir.path().join("bad.csv");
    std::fs::write(&bad_file, lines.join("\n")).unwrap();
    let out = import(&cli, &bad_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("line 4: temperature \"warm,00\""),
        "{stdout}"
    );
    assert!(stdout.contains("line 10: time"), "{stdout}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    assert_eq!(
        recorded(&cli),
        (0, 0, 0),
        "nothing recorded from a bad file"
    );

    let file = dir.path().join("export.csv");
    std::fs::write(&file, export(first, 20)).unwrap();
    let out = import(&cli, &file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = first + 19 * 5;
    assert!(String::from_utf8_lossy(&out.stdout).contains("recorded 20 of 20 readings"));
    assert_eq!(
        recorded(&cli),
        (last * 1000, last, 20),
        "Berlin times read as UTC instants"
    );

    // The same file again: nothing twice.
    let out = import(&cli, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("recorded 0 of 20 readings") && stdout.contains("20 already on the ledger"),
        "{stdout}"
    );
    assert_eq!(recorded(&cli), (last * 1000, last, 20));

    // A longer export of the same logger: only its 5 new rows.
    std::fs::write(&file, export(first, 25)).unwrap();
    let out = import(&cli, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recorded 5 of 25 readings"), "{stdout}");
    let last = first + 24 * 5;
    assert_eq!(recorded(&cli), (last * 1000, last, 25));
}
