use super::*;

const NOW: u64 = 1_800_100_000; // 2027-01-16

fn layout(columns: &str, zone: &str, decimal_comma: bool) -> Layout {
    Layout::from_args(&ImportArgs {
        device: "USB-1".into(),
        shipment: "S-1".into(),
        columns: columns.into(),
        time_zone: zone.into(),
        time_format: None,
        decimal_comma,
        delimiter: None,
        skip_lines: 0,
        file: "x.csv".into(),
    })
    .unwrap()
}

fn times(rows: &[Row]) -> Vec<u64> {
    rows.iter().map(|r| r.time_s).collect()
}

#[test]
fn berlin_times_with_decimal_comma_and_a_header() {
    let text = "Zeit;Feuchte;Temperatur\n\
                15.01.2027 10:00:00;45,5;4,25\n\
                15.01.2027 10:05;45,0;-0,05\n";
    let rows = parse_logger_csv(
        text,
        &layout("time=1,temperature=3,humidity=2", "Europe/Berlin", true),
        "USB-1",
        NOW,
    )
    .unwrap();
    // 10:00 CET is 09:00 UTC: 2027-01-15T09:00:00Z = 1 800 003 600.
    assert_eq!(times(&rows), vec![1_800_003_600, 1_800_003_900]);
    assert_eq!(
        rows.iter()
            .map(|r| (r.temperature_cdeg, r.humidity_permille))
            .collect::<Vec<_>>(),
        vec![(425, Some(455)), (-5, Some(450))]
    );
}

#[test]
fn a_fixed_offset_and_times_with_their_own_offset() {
    let text = "2027-01-15 10:00:00,4.5\n2027-01-15T09:01:00Z,4.6\n";
    let rows = parse_logger_csv(
        text,
        &layout("time=1,temperature=2", "+01:00", false),
        "USB-1",
        NOW,
    )
    .unwrap();
    assert_eq!(times(&rows), vec![1_800_003_600, 1_800_003_660]);
}

#[test]
fn the_repeated_hour_of_the_dst_change_reads_in_order_and_the_skipped_one_is_bad() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    let text = "2026-10-25 02:30,4\n2026-10-25 02:45,4\n2026-10-25 02:30,4\n2026-10-25 02:45,4\n2026-10-25 03:00,4\n";
    let rows = parse_logger_csv(
        text,
        &layout("time=1,temperature=2", "Europe/Berlin", false),
        "USB-1",
        NOW,
    )
    .unwrap();
    let t = times(&rows);
    assert_eq!(
        t[2] - t[0],
        3600,
        "the second 02:30 is an hour after the first"
    );
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    let gap = "2026-03-29 02:30,4\n";
    let bad = parse_logger_csv(
        gap,
        &layout("time=1,temperature=2", "Europe/Berlin", false),
        "USB-1",
        NOW,
    )
    .unwrap_err();
    assert!(
        bad[0].starts_with("line 1:") && bad[0].contains("does not exist"),
        "{bad:?}"
    );
}

#[test]
fn every_bad_row_is_listed_by_line() {
    let text = "# logger export\ntime,temp\n\
                2027-01-15 10:00,4.5\n\
                2027-01-15 10:01,hot\n\
                \n\
                2027-01-15 09:59,4.5\n\
                2027-01-15 10:02,150\n\
                2027-01-15 10:03\n\
                2027-13-15 10:04,4\n";
    let bad = parse_logger_csv(
        text,
        &layout("time=1,temperature=2", "UTC", false),
        "USB-1",
        NOW,
    )
    .unwrap_err();
    let lines: Vec<&str> = bad.iter().map(|b| b.split(':').next().unwrap()).collect();
    assert_eq!(
        lines,
        vec!["line 4", "line 6", "line 7", "line 8", "line 9"],
        "{bad:#?}"
    );
    assert!(bad[0].contains("\"hot\""), "{bad:?}");
    assert!(bad[1].contains("not after the previous row"), "{bad:?}");
    assert!(bad[2].contains("outside -100..100"), "{bad:?}");
    assert!(bad[3].contains("no temperature in column 2"), "{bad:?}");
}

#[test]
fn rows_ahead_of_the_clock_are_bad_and_sequences_are_milliseconds() {
    let ahead = format!("{},4\n", NOW + 301);
    let bad = parse_logger_csv(
        &ahead,
        &layout("time=1,temperature=2", "UTC", false),
        "USB-1",
        NOW,
    )
    .unwrap_err();
    assert!(bad[0].contains("ahead of the gateway clock"), "{bad:?}");
    let rows = parse_logger_csv(
        &format!("{NOW},4\n"),
        &layout("time=1,temperature=2", "UTC", false),
        "USB-1",
        NOW,
    )
    .unwrap();
    assert_eq!(reading_of("USB-1", &rows[0]).sequence, NOW * 1000);
}

#[test]
fn decimals_round_half_away_from_zero_without_floats() {
    assert_eq!(decimal("4.825", false, 2), Some(483));
    assert_eq!(decimal("-4,825", true, 2), Some(-483));
    assert_eq!(decimal("4", false, 2), Some(400));
    assert_eq!(decimal("4,5", false, 2), None);
    assert_eq!(decimal("1e3", false, 2), None);
    assert_eq!(decimal("", false, 2), None);
}

#[test]
fn options_are_checked_with_advice() {
    let mut args = ImportArgs {
        device: "D".into(),
        shipment: "S".into(),
        columns: "time=1".into(),
        time_zone: "Mars/Olympus".into(),
        time_format: None,
        decimal_comma: false,
        delimiter: None,
        skip_lines: 0,
        file: "x".into(),
    };
    assert!(Layout::from_args(&args)
        .unwrap_err()
        .to_string()
        .contains("temperature=N"));
    args.columns = "time=1,temperature=2".into();
    assert!(format!("{:#}", Layout::from_args(&args).unwrap_err()).contains("Europe/Berlin"));
    args.time_zone = "UTC".into();
    args.decimal_comma = true;
    args.delimiter = Some(',');
    assert!(Layout::from_args(&args)
        .unwrap_err()
        .to_string()
        .contains("--delimiter ';'"));
}
