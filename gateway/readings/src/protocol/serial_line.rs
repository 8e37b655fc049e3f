//! The serial line protocol: one reading per line, NMEA-style.
//!
//! ```text
//! $CCR,<device>,<seq>,<unix_s>,<temp_c>[,h=<permille>][,door=0|1][,loc=<lat>;<lon>]*<XX>\r\n
//! ```
//! `XX` is the XOR of every byte between `$` and `*`, as two hex digits
//! (NMEA 0183). Temperatures carry at most two decimals, coordinates at most six.
//! Parsing only; no I/O.
use super::{format_fixed, parse_fixed, DeviceReading, Door, ParseError, PARSE_LIMIT_CDEG};

/// Longest line accepted; anything longer is garbage (a logger line is ~80 bytes).
pub const MAX_LINE_BYTES: usize = 256;

/// XOR of all bytes: the NMEA checksum of the content between `$` and `*`.
pub fn checksum(content: &[u8]) -> u8 {
    content.iter().fold(0u8, |acc, b| acc ^ b)
}

/// Parses one line (with or without its line ending).
pub fn parse_line(line: &[u8]) -> Result<DeviceReading, ParseError> {
    let malformed = |what: &str| ParseError::Malformed(what.to_string());
    if line.len() > MAX_LINE_BYTES {
        return Err(malformed(
            "line longer than 256 bytes (a $CCR line is about 80): noise on the line, or a wrong baud rate",
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| malformed("line is not ASCII text"))?;
    let text = text.trim_end_matches(['\r', '\n']);
    let body = text
        .strip_prefix('$')
        .ok_or_else(|| malformed("line does not start with '$'"))?;
    let (content, stated_hex) = body
        .rsplit_once('*')
        .ok_or_else(|| malformed("line has no '*<checksum>'"))?;
    if stated_hex.len() != 2 {
        return Err(malformed("checksum is not two hex digits"));
    }
    let stated =
        u8::from_str_radix(stated_hex, 16).map_err(|_| malformed("checksum is not hex"))?;
    let computed = checksum(content.as_bytes());
    if stated != computed {
        return Err(ParseError::BadChecksum { stated, computed });
    }
    let mut fields = content.split(',');
    if fields.next() != Some("CCR") {
        return Err(malformed("sentence is not $CCR"));
    }
    let device_id = fields.next().unwrap_or_default();
    if device_id.is_empty()
        || device_id.len() > 64
        || !device_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(malformed("device id missing or not [A-Za-z0-9._-]{1,64}"));
    }
    let sequence = fields
        .next()
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or_else(|| malformed("sequence is not an unsigned integer"))?;
    let time_s = fields
        .next()
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or_else(|| malformed("time is not unix seconds"))?;
    let temperature = fields
        .next()
        .and_then(|f| parse_fixed(f, 2))
        .filter(|t| t.abs() <= PARSE_LIMIT_CDEG)
        .ok_or_else(|| malformed("temperature is not a decimal with at most 2 places"))?;
    let mut reading = DeviceReading {
        device_id: device_id.to_string(),
        sequence,
        time_s,
        temperature_cdeg: temperature as i32,
        humidity_permille: None,
        door: None,
        location: None,
    };
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| malformed("optional field is not key=value"))?;
        match key {
            "h" => {
                reading.humidity_permille = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| malformed("humidity is not an integer per mille"))?,
                )
            }
            "door" => {
                reading.door = Some(match value {
                    "0" => Door::Closed,
                    "1" => Door::Open,
                    _ => return Err(malformed("door is not 0 or 1")),
                })
            }
            "loc" => {
                let (lat, lon) = value
                    .split_once(';')
                    .ok_or_else(|| malformed("location is not <lat>;<lon>"))?;
                let lat = parse_fixed(lat, 6).filter(|v| v.abs() <= i32::MAX as i64);
                let lon = parse_fixed(lon, 6).filter(|v| v.abs() <= i32::MAX as i64);
                match (lat, lon) {
                    (Some(lat), Some(lon)) => reading.location = Some((lat as i32, lon as i32)),
                    _ => return Err(malformed("location is not decimal degrees")),
                }
            }
            _ => return Err(malformed("unknown optional field")),
        }
    }
    Ok(reading)
}

/// Formats a reading as a line, checksum and `\r\n` included.
pub fn format_line(reading: &DeviceReading) -> String {
    let mut content = format!(
        "CCR,{},{},{},{}",
        reading.device_id,
        reading.sequence,
        reading.time_s,
        format_fixed(reading.temperature_cdeg as i64, 2)
    );
    if let Some(h) = reading.humidity_permille {
        content.push_str(&format!(",h={h}"));
    }
    if let Some(door) = reading.door {
        content.push_str(if door == Door::Open {
            ",door=1"
        } else {
            ",door=0"
        });
    }
    if let Some((lat, lon)) = reading.location {
        content.push_str(&format!(
            ",loc={};{}",
            format_fixed(lat as i64, 6),
            format_fixed(lon as i64, 6)
        ));
    }
    format!("${content}*{:02X}\r\n", checksum(content.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> DeviceReading {
        DeviceReading {
            device_id: "TRK-7".into(),
            sequence: 42,
            time_s: 1_790_000_000,
            temperature_cdeg: -125,
            humidity_permille: Some(655),
            door: Some(Door::Open),
            location: Some((52_520_008, -13_404_954)),
        }
    }

    #[test]
    fn formatted_line_parses_back() {
        let line = format_line(&sample());
        assert!(line
            .starts_with("$CCR,TRK-7,42,1790000000,-1.25,h=655,door=1,loc=52.520008;-13.404954*"));
        assert_eq!(parse_line(line.as_bytes()), Ok(sample()));
    }

    #[test]
    fn flipped_byte_is_a_bad_checksum() {
        let line = format_line(&sample()).replace("-1.25", "-1.35");
        assert!(matches!(
            parse_line(line.as_bytes()),
            Err(ParseError::BadChecksum { .. })
        ));
    }

    #[test]
    fn missing_fields_are_malformed() {
        for content in [
            "CCR,D1,1",
            "CCR,D1,x,1,2.00",
            "CCR,,1,1,2.00",
            "GGA,D1,1,1,2.00",
            "CCR,D1,1,1,2.00,door=2",
        ] {
            let line = format!("${content}*{:02X}", checksum(content.as_bytes()));
            assert!(
                matches!(parse_line(line.as_bytes()), Err(ParseError::Malformed(_))),
                "{content}"
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn any_reading_round_trips(
            device in "[A-Za-z0-9_-]{1,20}",
            sequence in 0u64..u64::MAX,
            time_s in 0u64..4_000_000_000,
            temperature in -100_000i32..100_000,
            humidity in proptest::option::of(0u32..2000),
            door in proptest::option::of(any::<bool>()),
            location in proptest::option::of((-90_000_000i32..90_000_000, -180_000_000i32..180_000_000)),
        ) {
            let reading = DeviceReading {
                device_id: device,
                sequence,
                time_s,
                temperature_cdeg: temperature,
                humidity_permille: humidity,
                door: door.map(|open| if open { Door::Open } else { Door::Closed }),
                location,
            };
            prop_assert_eq!(parse_line(format_line(&reading).as_bytes()), Ok(reading));
        }
    }
}
