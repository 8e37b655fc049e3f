use super::*;
use proptest::prelude::*;

const T0: u64 = 1_790_000_000;

fn naming() -> SenmlNaming {
    SenmlNaming {
        devices: BTreeMap::from([(
            "urn:dev:ow:10e2073a01080063".to_string(),
            "FRIDGE-7".to_string(),
        )]),
        name_prefix: Some("urn:dev:mac:".into()),
    }
}

fn json(text: &str) -> Result<Vec<DeviceReading>, SenmlError> {
    parse_pack(SenmlFormat::Json, text.as_bytes(), &naming())
}

fn malformed(text: &str) -> String {
    match json(text) {
        Err(SenmlError::Malformed(m)) => m,
        other => panic!("not malformed: {other:?}"),
    }
}

/// Minimal CBOR encoder for the tests (definite lengths).
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
    }
}
fn int(i: i64) -> Vec<u8> {
    if i >= 0 {
        head(0, i as u64)
    } else {
        head(1, (-1 - i) as u64)
    }
}
fn text(s: &str) -> Vec<u8> {
    [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
}
fn double(f: f64) -> Vec<u8> {
    [vec![0xfb], f.to_be_bytes().to_vec()].concat()
}
fn map(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = head(5, pairs.len() as u64);
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}
fn array(items: &[Vec<u8>]) -> Vec<u8> {
    [head(4, items.len() as u64), items.concat()].concat()
}

#[test]
fn rfc_example_with_base_name_time_and_unit_resolves() {
    // RFC 8428 §5.1.3-style pack: base name, base time, base unit, relative offsets.
    let pack = format!(
        r#"[{{"bn":"urn:dev:ow:10e2073a01080063:","bt":{T0},"bu":"Cel","bver":10,"n":"temp","v":4.8}},
            {{"n":"temp","t":60,"v":5.25}},
            {{"n":"hum","u":"%RH","t":60,"v":65.4}},
            {{"n":"door","t":60,"vb":true}}]"#
    );
    let readings = json(&pack).unwrap();
    assert_eq!(readings.len(), 2);
    assert_eq!(readings[0].device_id, "FRIDGE-7");
    assert_eq!((readings[0].sequence, readings[0].time_s), (T0 * 1000, T0));
    assert_eq!(readings[0].temperature_cdeg, 480);
    assert_eq!(readings[1].temperature_cdeg, 525);
    assert_eq!(readings[1].humidity_permille, Some(654));
    assert_eq!(readings[1].door, Some(Door::Open));
    assert_eq!(readings[1].sequence, (T0 + 60) * 1000);
}

#[test]
fn prefix_rule_names_the_device_and_records_sort_by_time() {
    let pack = format!(
        r#"[{{"bn":"urn:dev:mac:0024befffe804ff1:","n":"temp","u":"Cel","t":{},"v":3}},
            {{"n":"temp","u":"Cel","t":{T0},"v":2}}]"#,
        T0 + 1
    );
    let readings = json(&pack).unwrap();
    assert_eq!(readings[0].device_id, "0024befffe804ff1");
    assert_eq!(
        readings
            .iter()
            .map(|r| r.temperature_cdeg)
            .collect::<Vec<_>>(),
        vec![200, 300]
    );
}

#[test]
fn kelvin_is_converted_exactly_with_rounding_half_away_from_zero() {
    let one = |v: &str| {
        let pack = format!(r#"[{{"n":"urn:dev:mac:aa","u":"K","t":{T0},"v":{v}}}]"#);
        json(&pack).unwrap()[0].temperature_cdeg
    };
    assert_eq!(one("277.15"), 400);
    assert_eq!(one("273.15"), 0);
    assert_eq!(one("255.15"), -1800);
    assert_eq!(one("277.155"), 401); // 4.005 → 4.01
    assert_eq!(one("273.145"), -1); // −0.005 → −0.01
    assert_eq!(one("277.154951"), 400);
    assert_eq!(one("280"), 685);
}

#[test]
fn celsius_rounds_on_the_decimal_written_not_the_binary_float() {
    // 4.825 × 100 in f64 is 482.49999…; the decimal 4.825 rounds to 483.
    let pack = format!(r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":4.825}}]"#);
    assert_eq!(json(&pack).unwrap()[0].temperature_cdeg, 483);
    let pack = format!(r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":-0.005}}]"#);
    assert_eq!(json(&pack).unwrap()[0].temperature_cdeg, -1);
}

#[test]
fn other_units_are_refused_naming_the_unit() {
    let message = malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"degF","t":{T0},"v":40}}]"#
    ));
    assert!(
        message.contains("\"degF\"") && message.contains("Cel or K"),
        "{message}"
    );
    let message = malformed(&format!(r#"[{{"n":"urn:dev:mac:aa","t":{T0},"v":4}}]"#));
    assert!(message.contains("no unit"), "{message}");
}

#[test]
fn relative_or_missing_times_are_refused() {
    let message = malformed(r#"[{"n":"urn:dev:mac:aa","u":"Cel","v":4}]"#);
    assert!(
        message.contains("relative") && message.contains("absolute"),
        "{message}"
    );
    let message = malformed(r#"[{"n":"urn:dev:mac:aa","u":"Cel","t":-60,"v":4}]"#);
    assert!(message.contains("relative"), "{message}");
}

#[test]
fn hostile_values_are_refused() {
    assert!(malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":1e300}}]"#
    ))
    .contains("beyond any sensor"));
    assert!(malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":"NaN"}}]"#
    ))
    .contains("expected a number"));
    assert!(malformed(r#"[{"n":"urn:dev:mac:aa","u":"Cel","t":1e999,"v":4}]"#).contains("JSON"));
    assert!(malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"vs":"4"}}]"#
    ))
    .contains("vs, vd"));
    assert!(malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"s":4}}]"#
    ))
    .contains("sums"));
    assert!(malformed(&format!(
        r#"[{{"n":"bad name!","u":"Cel","t":{T0},"v":4}}]"#
    ))
    .contains("not a SenML name"));
    assert!(malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":4,"x_":1}}]"#
    ))
    .contains("must-understand"));
    assert!(malformed(&format!(
        r#"[{{"bver":11,"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":4}}]"#
    ))
    .contains("bver 11"));
    assert!(malformed("[]").contains("no records"));
    assert!(malformed("{}").contains("array"));
    let many = format!(
        "[{}]",
        vec![format!(r#"{{"n":"urn:dev:mac:aa","u":"Cel","t":{T0},"v":4}}"#); MAX_RECORDS + 1]
            .join(",")
    );
    assert!(malformed(&many).contains("more than 10000"));
}

#[test]
fn readings_need_one_temperature_per_time_and_one_device_per_pack() {
    let message = malformed(&format!(
        r#"[{{"n":"urn:dev:mac:aa:door","t":{T0},"vb":false}}]"#
    ));
    assert!(message.contains("no temperature"), "{message}");
    let message = malformed(&format!(
        r#"[{{"bu":"Cel","bt":{T0},"n":"urn:dev:mac:aa:t1","v":4}},{{"n":"urn:dev:mac:aa:t2","v":5}}]"#
    ));
    assert!(message.contains("second temperature"), "{message}");
    let message = malformed(&format!(
        r#"[{{"bu":"Cel","bt":{T0},"n":"urn:dev:mac:aa","v":4}},{{"n":"urn:dev:mac:bb","v":5}}]"#
    ));
    assert!(message.contains("one pack per device"), "{message}");
}

#[test]
fn the_longest_mapped_name_start_wins() {
    let naming = SenmlNaming {
        devices: BTreeMap::from([
            ("urn:dev:ow:1".to_string(), "A".to_string()),
            ("urn:dev:ow:10".to_string(), "B".to_string()),
        ]),
        name_prefix: Some("urn:dev:mac:".into()),
    };
    assert_eq!(
        naming.device_of("urn:dev:ow:10e2:temp").as_deref(),
        Some("B")
    );
    assert_eq!(naming.device_of("urn:dev:ow:1x:temp").as_deref(), Some("A"));
    assert_eq!(naming.device_of("urn:dev:ow:2").as_deref(), None);
    assert_eq!(
        naming.device_of("urn:dev:mac:0a/temp").as_deref(),
        Some("0a")
    );
    assert_eq!(naming.device_of("urn:dev:mac:").as_deref(), None);
}

#[test]
fn unknown_names_are_their_own_refusal() {
    let result = json(&format!(
        r#"[{{"n":"urn:dev:imei:1","u":"Cel","t":{T0},"v":4}}]"#
    ));
    let Err(SenmlError::UnknownName(message)) = result else {
        panic!("{result:?}")
    };
    assert!(
        message.contains("urn:dev:imei:1") && message.contains("[mqtt.senml"),
        "{message}"
    );
}

#[test]
fn cbor_pack_with_integer_labels_parses_like_json() {
    let pack = array(&[
        map(&[
            (int(-2), text("urn:dev:ow:10e2073a01080063:")),
            (int(-3), int(T0 as i64)),
            (int(-4), text("K")),
            (int(0), text("temp")),
            (int(2), double(277.15)),
        ]),
        map(&[
            (int(0), text("hum")),
            (int(1), text("%RH")),
            (int(2), vec![0xf9, 0x52, 0x00]), // half-precision 48.0
        ]),
        map(&[(int(0), text("door")), (int(4), vec![0xf4])]),
    ]);
    let readings = parse_pack(SenmlFormat::Cbor, &pack, &naming()).unwrap();
    assert_eq!(readings.len(), 1);
    let r = &readings[0];
    assert_eq!(
        (
            r.device_id.as_str(),
            r.temperature_cdeg,
            r.humidity_permille,
            r.door
        ),
        ("FRIDGE-7", 400, Some(480), Some(Door::Closed))
    );
}

#[test]
fn bad_cbor_is_refused_without_allocating_what_it_claims() {
    let cbor = |bytes: &[u8]| match parse_pack(SenmlFormat::Cbor, bytes, &naming()) {
        Err(SenmlError::Malformed(m)) => m,
        other => panic!("{other:?}"),
    };
    // An array claiming 2^64−1 records in 9 bytes.
    let mut huge = vec![0x9b];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(cbor(&huge).contains("declares"), "{}", cbor(&huge));
    assert!(cbor(&[0x81, 0xa1, 0x00]).contains("ends early"));
    assert!(cbor(&[0xc1, 0x00]).contains("tag"));
    assert!(cbor(b"[{\"n\":1}]").contains("SenML CBOR"));
    let deep = [0x81u8; 40];
    assert!(cbor(&deep).contains("nests deeper"));
    let nan = array(&[map(&[
        (int(0), text("urn:dev:mac:aa")),
        (int(1), text("Cel")),
        (int(6), int(T0 as i64)),
        (int(2), double(f64::NAN)),
    ])]);
    assert!(cbor(&nan).contains("finite"), "{}", cbor(&nan));
    let unknown = array(&[map(&[(int(-99), int(1))])]);
    assert!(cbor(&unknown).contains("must-understand label -99"));
}

#[test]
fn topics_name_org_and_format() {
    assert_eq!(
        split_senml_topic("site/cc/acme/fridge-gw/senml-cbor"),
        Some(("site/cc", "acme", SenmlFormat::Cbor))
    );
    assert_eq!(
        split_senml_topic("cc/acme/x/senml"),
        Some(("cc", "acme", SenmlFormat::Json))
    );
    assert_eq!(split_senml_topic("cc/acme/x/readings"), None);
    assert_eq!(split_senml_topic("acme/x/senml"), None);
}

#[test]
fn sub_second_readings_keep_their_milliseconds() {
    let readings: Vec<DeviceReading> = (0..50u64)
        .map(|i| {
            let ms = T0 * 1000 + 123 + i * 20;
            DeviceReading {
                device_id: "aa".into(),
                sequence: ms,
                time_s: ms / 1000,
                temperature_cdeg: 480,
                humidity_permille: None,
                door: None,
                location: None,
            }
        })
        .collect();
    let pack = encode_json("urn:dev:mac:aa:", &readings);
    assert_eq!(
        parse_pack(SenmlFormat::Json, &pack, &naming()).unwrap(),
        readings
    );
}

proptest! {
    #[test]
    fn encoded_packs_parse_back(temps in proptest::collection::vec(-9_999i32..9_999, 1..20)) {
        let readings: Vec<DeviceReading> = temps.iter().enumerate().map(|(i, t)| DeviceReading {
            device_id: "aa".into(),
            sequence: (T0 + i as u64) * 1000,
            time_s: T0 + i as u64,
            temperature_cdeg: *t,
            humidity_permille: Some(500 + i as u32),
            door: Some(if i % 2 == 0 { Door::Open } else { Door::Closed }),
            location: None,
        }).collect();
        let pack = encode_json("urn:dev:mac:aa:", &readings);
        prop_assert_eq!(parse_pack(SenmlFormat::Json, &pack, &naming()).unwrap(), readings);
    }

    #[test]
    fn the_fast_rounding_path_agrees_with_exact_decimals(mantissa in -10_000_000i64..10_000_000, places in 0u32..6) {
        let value: f64 = format!("{}e-{places}", mantissa).parse().unwrap();
        for to in [1u32, 2] {
            let (m, p) = exact_decimal(value);
            prop_assert_eq!(scaled(value, to), rescale(m, p, to), "{} to {} places", value, to);
        }
    }

    #[test]
    fn hostile_cbor_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_pack(SenmlFormat::Cbor, &bytes, &naming());
    }
}
