//! MQTT payloads on `<prefix>/<org>/<device>/readings`.
//!
//! JSON: one object or an array of objects
//! `{"seq":1,"time_s":1790000000,"temp_cdeg":525,"humidity_permille":650,"door":"open",
//! "lat_udeg":52520008,"lon_udeg":13404954}` (integers only, so no float rounding).
//! An optional `"device"` must equal the topic's device; any other key is refused.
//!
//! Binary (first byte `0xCC`): `0xCC, version 0x01, count: u16 BE`, then `count` records of
//! 29 bytes: `seq u64 BE, time_s u64 BE, temp_cdeg i16 BE, flags u8
//! (bit0 humidity, bit1 door known, bit2 door open, bit3 location), humidity u16 BE,
//! lat_udeg i32 BE, lon_udeg i32 BE`. Parsing only; no I/O.
use super::{DeviceReading, Door, ParseError};

/// First byte of the binary form.
pub const BINARY_MAGIC: u8 = 0xCC;
/// Bytes per reading in the binary form.
pub const BINARY_RECORD_BYTES: usize = 29;

/// The `<org>` and `<device>` named by a readings topic under `prefix`.
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(org), Some(device), Some("readings"), None)
            if !org.is_empty() && !device.is_empty() =>
        {
            Some((org, device))
        }
        _ => None,
    }
}

/// The prefix, `<org>` and `<device>` of any readings topic
/// (`<prefix>/<org>/<device>/readings`, the prefix possibly with levels of its own).
pub fn split_topic(topic: &str) -> Option<(&str, &str, &str)> {
    let mut levels = topic.rsplitn(4, '/');
    let (readings, device, org, prefix) = (
        levels.next()?,
        levels.next()?,
        levels.next()?,
        levels.next()?,
    );
    (readings == "readings" && !org.is_empty() && !device.is_empty() && !prefix.is_empty())
        .then_some((prefix, org, device))
}

/// The keys a JSON reading may carry; any other key refuses the message
/// (a typo would otherwise drop data silently).
pub const JSON_KEYS: [&str; 8] = [
    "device",
    "seq",
    "time_s",
    "temp_cdeg",
    "humidity_permille",
    "door",
    "lat_udeg",
    "lon_udeg",
];

/// Parses a payload (JSON or binary) for `device_id` (taken from the topic).
/// A message holds at least one reading; one bad element refuses the whole
/// message, and the error names the element (from 1) and what is wrong with it.
pub fn parse_payload(device_id: &str, payload: &[u8]) -> Result<Vec<DeviceReading>, ParseError> {
    if payload.first() == Some(&BINARY_MAGIC) {
        return parse_binary(device_id, payload);
    }
    let malformed = |what: String| ParseError::Malformed(format!("JSON: {what}"));
    let body: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        malformed(format!(
            "not valid JSON ({e}); send one reading object or an array of them"
        ))
    })?;
    match &body {
        serde_json::Value::Array(items) if items.is_empty() => Err(malformed(
            "the array holds no readings; send at least one".into(),
        )),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                json_reading(device_id, item)
                    .map_err(|e| malformed(format!("element {} of {}: {e}", i + 1, items.len())))
            })
            .collect(),
        _ => Ok(vec![json_reading(device_id, &body).map_err(malformed)?]),
    }
}

/// What a JSON value is, for error messages.
fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One reading object. Integers only: a float, a string or an out-of-range
/// number is refused with the key, the value and what is expected.
fn json_reading(device_id: &str, item: &serde_json::Value) -> Result<DeviceReading, String> {
    let serde_json::Value::Object(fields) = item else {
        return Err(format!(
            "{} is not a reading; expected an object like {{\"seq\":1,\"time_s\":1790000000,\"temp_cdeg\":480}}",
            json_kind(item)
        ));
    };
    if let Some(key) = fields.keys().find(|k| !JSON_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key {key:?}; a reading has only {}",
            JSON_KEYS.join(", ")
        ));
    }
    let present = |key: &str| fields.get(key).filter(|v| !v.is_null());
    let integer = |key: &str, expected: &str| -> Result<Option<i128>, String> {
        let Some(value) = present(key) else {
            return Ok(None);
        };
        let number = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from));
        number.map(Some).ok_or_else(|| {
            let hint = match value.as_f64() {
                Some(celsius) if key == "temp_cdeg" && celsius.is_finite() => {
                    format!("; for {value} °C send {}", (celsius * 100.0).round())
                }
                _ => String::new(),
            };
            format!("{key} is {value}, expected {expected}{hint}")
        })
    };
    fn fit<T: TryFrom<i128>>(key: &str, value: i128, expected: &str) -> Result<T, String> {
        T::try_from(value)
            .map_err(|_| format!("{key} {value} is out of range; expected {expected}"))
    }
    let required = |key: &str, expected: &str| -> Result<i128, String> {
        integer(key, expected)?.ok_or_else(|| format!("missing {key:?} ({expected})"))
    };
    const SEQ: &str = "the logger's sequence number, an integer from 1";
    const TIME: &str = "unix seconds, an integer";
    const TEMP: &str = "an integer in hundredths of °C (480 is 4.80 °C)";
    const HUMIDITY: &str = "an integer in per mille, 0 to 1000";
    const DEGREES: &str = "an integer in millionths of a degree";
    if let Some(named) = present("device") {
        if named.as_str() != Some(device_id) {
            return Err(format!(
                "payload names device {named} but the topic names {device_id:?}; drop \"device\" or publish on the device's own topic"
            ));
        }
    }
    let location = match (integer("lat_udeg", DEGREES)?, integer("lon_udeg", DEGREES)?) {
        (Some(lat), Some(lon)) => Some((
            fit("lat_udeg", lat, DEGREES)?,
            fit("lon_udeg", lon, DEGREES)?,
        )),
        (None, None) => None,
        _ => return Err("lat_udeg and lon_udeg must come together".into()),
    };
    let door = match present("door") {
        None => None,
        Some(v) if v == "open" => Some(Door::Open),
        Some(v) if v == "closed" => Some(Door::Closed),
        Some(v) => return Err(format!("door is {v}, expected \"open\" or \"closed\"")),
    };
    Ok(DeviceReading {
        device_id: device_id.to_string(),
        sequence: fit("seq", required("seq", SEQ)?, SEQ)?,
        time_s: fit("time_s", required("time_s", TIME)?, TIME)?,
        temperature_cdeg: fit("temp_cdeg", required("temp_cdeg", TEMP)?, TEMP)?,
        humidity_permille: integer("humidity_permille", HUMIDITY)?
            .map(|h| fit("humidity_permille", h, HUMIDITY))
            .transpose()?,
        door,
        location,
    })
}

fn parse_binary(device_id: &str, payload: &[u8]) -> Result<Vec<DeviceReading>, ParseError> {
    let malformed = |what: String| ParseError::Malformed(format!("binary: {what}"));
    if payload.len() < 4 || payload[1] != 1 {
        return Err(malformed("header is not 0xCC 0x01 <count u16>".into()));
    }
    let count = u16::from_be_bytes([payload[2], payload[3]]) as usize;
    if count == 0 {
        return Err(malformed(
            "count is 0; a message holds at least one reading".into(),
        ));
    }
    let body = &payload[4..];
    if body.len() != count * BINARY_RECORD_BYTES {
        return Err(malformed(format!(
            "{count} records need {} bytes, got {}",
            count * BINARY_RECORD_BYTES,
            body.len()
        )));
    }
    Ok(body
        .chunks_exact(BINARY_RECORD_BYTES)
        .map(|r| {
            let u64_at = |i: usize| u64::from_be_bytes(r[i..i + 8].try_into().unwrap_or([0; 8]));
            let i32_at = |i: usize| i32::from_be_bytes(r[i..i + 4].try_into().unwrap_or([0; 4]));
            let flags = r[18];
            DeviceReading {
                device_id: device_id.to_string(),
                sequence: u64_at(0),
                time_s: u64_at(8),
                temperature_cdeg: i16::from_be_bytes([r[16], r[17]]) as i32,
                humidity_permille: (flags & 1 != 0)
                    .then(|| u16::from_be_bytes([r[19], r[20]]) as u32),
                door: (flags & 2 != 0).then_some(if flags & 4 != 0 {
                    Door::Open
                } else {
                    Door::Closed
                }),
                location: (flags & 8 != 0).then(|| (i32_at(21), i32_at(25))),
            }
        })
        .collect())
}

/// Encodes readings as JSON (an array).
pub fn encode_json(readings: &[DeviceReading]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = readings
        .iter()
        .map(|r| {
            let mut item = serde_json::json!({
                "seq": r.sequence, "time_s": r.time_s, "temp_cdeg": r.temperature_cdeg,
            });
            if let Some(h) = r.humidity_permille {
                item["humidity_permille"] = h.into();
            }
            if let Some(door) = r.door {
                item["door"] = if door == Door::Open { "open" } else { "closed" }.into();
            }
            if let Some((lat, lon)) = r.location {
                item["lat_udeg"] = lat.into();
                item["lon_udeg"] = lon.into();
            }
            item
        })
        .collect();
    serde_json::Value::Array(items).to_string().into_bytes()
}

/// Encodes readings in the binary form; temperatures outside ±327.67 °C are clamped
/// and at most 65 535 readings are encoded (callers send fewer).
pub fn encode_binary(readings: &[DeviceReading]) -> Vec<u8> {
    let readings = &readings[..readings.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(4 + readings.len() * BINARY_RECORD_BYTES);
    out.extend_from_slice(&[BINARY_MAGIC, 1]);
    out.extend_from_slice(&(readings.len() as u16).to_be_bytes());
    for r in readings {
        out.extend_from_slice(&r.sequence.to_be_bytes());
        out.extend_from_slice(&r.time_s.to_be_bytes());
        let temp = r.temperature_cdeg.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        out.extend_from_slice(&temp.to_be_bytes());
        let mut flags = 0u8;
        if r.humidity_permille.is_some() {
            flags |= 1;
        }
        match r.door {
            Some(Door::Open) => flags |= 2 | 4,
            Some(Door::Closed) => flags |= 2,
            None => {}
        }
        if r.location.is_some() {
            flags |= 8;
        }
        out.push(flags);
        let humidity = r.humidity_permille.unwrap_or(0).min(u16::MAX as u32) as u16;
        out.extend_from_slice(&humidity.to_be_bytes());
        let (lat, lon) = r.location.unwrap_or((0, 0));
        out.extend_from_slice(&lat.to_be_bytes());
        out.extend_from_slice(&lon.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(seq: u64) -> DeviceReading {
        DeviceReading {
            device_id: "BOX-1".into(),
            sequence: seq,
            time_s: 1_790_000_000 + seq % 1000,
            temperature_cdeg: 480,
            humidity_permille: Some(700),
            door: Some(Door::Closed),
            location: None,
        }
    }

    #[test]
    fn topic_names_org_and_device() {
        assert_eq!(
            parse_topic("coldchain", "coldchain/acme/BOX-1/readings"),
            Some(("acme", "BOX-1"))
        );
        assert_eq!(
            parse_topic("coldchain", "coldchain/acme/BOX-1/status"),
            None
        );
        assert_eq!(parse_topic("coldchain", "other/acme/BOX-1/readings"), None);
        assert_eq!(
            split_topic("site/cc/acme/BOX-1/readings"),
            Some(("site/cc", "acme", "BOX-1"))
        );
        assert_eq!(split_topic("acme/BOX-1/readings"), None);
    }

    #[test]
    fn single_json_object_and_arrays_parse() {
        let one = br#"{"seq":3,"time_s":1790000003,"temp_cdeg":480,"humidity_permille":700,"door":"closed"}"#;
        assert_eq!(parse_payload("BOX-1", one), Ok(vec![reading(3)]));
        let many = encode_json(&[reading(1), reading(2)]);
        assert_eq!(
            parse_payload("BOX-1", &many),
            Ok(vec![reading(1), reading(2)])
        );
    }

    #[test]
    fn json_naming_another_device_is_malformed() {
        let body = br#"{"device":"BOX-2","seq":3,"time_s":1,"temp_cdeg":480}"#;
        assert!(matches!(
            parse_payload("BOX-1", body),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn float_temperature_is_malformed() {
        let body = br#"{"seq":3,"time_s":1,"temp_cdeg":4.8}"#;
        assert!(matches!(
            parse_payload("BOX-1", body),
            Err(ParseError::Malformed(_))
        ));
    }

    fn malformed_message(body: &[u8]) -> String {
        match parse_payload("BOX-1", body) {
            Err(ParseError::Malformed(message)) => message,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn unknown_json_key_is_named_with_the_keys_expected() {
        let body = br#"[{"seq":1,"time_s":1,"temp_cdeg":480},{"seq":2,"time_s":2,"tmp_cdeg":480}]"#;
        let message = malformed_message(body);
        assert!(
            message.contains("element 2")
                && message.contains("\"tmp_cdeg\"")
                && message.contains("temp_cdeg, humidity_permille"),
            "{message}"
        );
    }

    #[test]
    fn float_temperature_asks_for_integer_hundredths() {
        let message = malformed_message(br#"{"seq":3,"time_s":1,"temp_cdeg":4.8}"#);
        assert!(
            message.contains("temp_cdeg") && message.contains("4.8") && message.contains("480"),
            "{message}"
        );
        let message = malformed_message(br#"{"seq":3,"time_s":1}"#);
        assert!(message.contains("missing \"temp_cdeg\""), "{message}");
    }

    #[test]
    fn empty_messages_are_malformed() {
        assert!(malformed_message(b"[]").contains("no readings"));
        assert!(malformed_message(&[BINARY_MAGIC, 1, 0, 0]).contains("count is 0"));
    }

    #[test]
    fn truncated_binary_is_malformed() {
        let mut body = encode_binary(&[reading(1)]);
        body.pop();
        assert!(matches!(
            parse_payload("BOX-1", &body),
            Err(ParseError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn binary_round_trips(seqs in proptest::collection::vec(0u64..u64::MAX, 1..40), temp in -32768i32..32767) {
            let readings: Vec<DeviceReading> = seqs.iter().map(|s| DeviceReading {
                temperature_cdeg: temp, location: Some((1, -1)), ..reading(*s)
            }).collect();
            prop_assert_eq!(parse_payload("BOX-1", &encode_binary(&readings)), Ok(readings));
        }

        #[test]
        fn json_round_trips(
            seqs in proptest::collection::vec(0u64..u64::MAX, 1..20),
            temp in any::<i32>(),
            humidity in proptest::option::of(any::<u32>()),
            location in proptest::option::of((any::<i32>(), any::<i32>())),
            door in proptest::option::of(any::<bool>()),
        ) {
            let readings: Vec<DeviceReading> = seqs.iter().map(|s| DeviceReading {
                temperature_cdeg: temp,
                humidity_permille: humidity,
                location,
                door: door.map(|open| if open { Door::Open } else { Door::Closed }),
                time_s: u64::MAX - s,
                ..reading(*s)
            }).collect();
            prop_assert_eq!(parse_payload("BOX-1", &encode_json(&readings)), Ok(readings));
        }

        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_payload("BOX-1", &bytes);
        }
    }
}
