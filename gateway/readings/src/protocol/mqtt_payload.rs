//! MQTT payloads on `<prefix>/<org>/<device>/readings`.
//!
//! JSON: one object or an array of objects
//! `{"seq":1,"time_s":1790000000,"temp_cdeg":525,"humidity_permille":650,"door":"open",
//! "lat_udeg":52520008,"lon_udeg":13404954}` (integers only, so no float rounding).
//! An optional `"device"` must equal the topic's device.
//!
//! Binary (first byte `0xCC`): `0xCC, version 0x01, count: u16 BE`, then `count` records of
//! 29 bytes: `seq u64 BE, time_s u64 BE, temp_cdeg i16 BE, flags u8
//! (bit0 humidity, bit1 door known, bit2 door open, bit3 location), humidity u16 BE,
//! lat_udeg i32 BE, lon_udeg i32 BE`. Parsing only; no I/O.
use super::{DeviceReading, Door, ParseError};
use serde::Deserialize;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading {
    device: Option<String>,
    seq: u64,
    time_s: u64,
    temp_cdeg: i32,
    humidity_permille: Option<u32>,
    door: Option<JsonDoor>,
    lat_udeg: Option<i32>,
    lon_udeg: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum JsonDoor {
    Open,
    Closed,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonBody {
    One(JsonReading),
    Many(Vec<JsonReading>),
}

/// Parses a payload (JSON or binary) for `device_id` (taken from the topic).
/// One bad element rejects the whole message: a logger that produces it is broken.
pub fn parse_payload(device_id: &str, payload: &[u8]) -> Result<Vec<DeviceReading>, ParseError> {
    if payload.first() == Some(&BINARY_MAGIC) {
        return parse_binary(device_id, payload);
    }
    let body: JsonBody =
        serde_json::from_slice(payload).map_err(|e| ParseError::Malformed(format!("JSON: {e}")))?;
    let items = match body {
        JsonBody::One(one) => vec![one],
        JsonBody::Many(many) => many,
    };
    items
        .into_iter()
        .map(|item| {
            if let Some(named) = &item.device {
                if named != device_id {
                    return Err(ParseError::Malformed(format!(
                        "payload names device {named:?} but the topic names {device_id:?}"
                    )));
                }
            }
            let location = match (item.lat_udeg, item.lon_udeg) {
                (Some(lat), Some(lon)) => Some((lat, lon)),
                (None, None) => None,
                _ => {
                    return Err(ParseError::Malformed(
                        "lat_udeg and lon_udeg must come together".into(),
                    ))
                }
            };
            Ok(DeviceReading {
                device_id: device_id.to_string(),
                sequence: item.seq,
                time_s: item.time_s,
                temperature_cdeg: item.temp_cdeg,
                humidity_permille: item.humidity_permille,
                door: item.door.map(|d| match d {
                    JsonDoor::Open => Door::Open,
                    JsonDoor::Closed => Door::Closed,
                }),
                location,
            })
        })
        .collect()
}

fn parse_binary(device_id: &str, payload: &[u8]) -> Result<Vec<DeviceReading>, ParseError> {
    let malformed = |what: String| ParseError::Malformed(format!("binary: {what}"));
    if payload.len() < 4 || payload[1] != 1 {
        return Err(malformed("header is not 0xCC 0x01 <count u16>".into()));
    }
    let count = u16::from_be_bytes([payload[2], payload[3]]) as usize;
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
        fn binary_round_trips(seqs in proptest::collection::vec(0u64..u64::MAX, 0..40), temp in -32768i32..32767) {
            let readings: Vec<DeviceReading> = seqs.iter().map(|s| DeviceReading {
                temperature_cdeg: temp, location: Some((1, -1)), ..reading(*s)
            }).collect();
            prop_assert_eq!(parse_payload("BOX-1", &encode_binary(&readings)), Ok(readings));
        }

        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_payload("BOX-1", &bytes);
        }
    }
}
