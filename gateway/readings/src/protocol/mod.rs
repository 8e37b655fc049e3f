//! Device protocols: how loggers hand readings to the gateway.
//!
//! - [`serial_line`]: one `$CCR` line per reading with an NMEA-style XOR checksum.
//! - [`mqtt_payload`]: JSON (one object or an array) or the compact binary form on
//!   `coldchain/<org>/<device>/readings`.
//! - [`senml`]: SenML (RFC 8428) packs, JSON or CBOR, on `…/<org>/<publisher>/senml[-cbor]`.
//!
//! Parsing only: nothing here knows which devices exist or what the ledger holds
//! (that is [`crate::validation`]). See `docs/device-protocols.md`.
pub mod mqtt_payload;
pub mod senml;
pub mod serial_line;

/// Largest temperature magnitude a parser accepts syntactically (°C × 100);
/// plausibility is judged later by validation.
pub const PARSE_LIMIT_CDEG: i64 = 1_000_000;

/// State of the door contact a logger reports, when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    Closed,
    Open,
}

/// One reading as a logger reported it, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReading {
    pub device_id: String,
    /// Per-device counter, strictly increasing, starting at 1.
    pub sequence: u64,
    /// Unix seconds by the logger's own clock.
    pub time_s: u64,
    /// Hundredths of a degree Celsius.
    pub temperature_cdeg: i32,
    /// Relative humidity in per mille (0..=1000).
    pub humidity_permille: Option<u32>,
    pub door: Option<Door>,
    /// Latitude and longitude in millionths of a degree.
    pub location: Option<(i32, i32)>,
}

/// Why bytes from a device could not be read as readings at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("bad checksum: line says {stated:02X}, content gives {computed:02X}")]
    BadChecksum { stated: u8, computed: u8 },
}

impl ParseError {
    /// The rejection-reason label used in metrics and the dead-letter store.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "malformed",
            ParseError::BadChecksum { .. } => "bad_checksum",
        }
    }
}

/// Parses a decimal with at most `places` fractional digits into an integer
/// scaled by 10^places ("5.25", 2 → 525). No floating point, so "-0.05" is exact.
pub fn parse_fixed(text: &str, places: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.len() > places as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let whole_value: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut fraction_value: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    for _ in fraction.len()..places as usize {
        fraction_value *= 10;
    }
    let scaled = whole_value
        .checked_mul(10i64.pow(places))?
        .checked_add(fraction_value)?;
    Some(if negative { -scaled } else { scaled })
}

/// Formats an integer scaled by 10^places as a decimal (525, 2 → "5.25").
pub fn format_fixed(value: i64, places: u32) -> String {
    let scale = 10i64.pow(places);
    if places == 0 {
        return value.to_string();
    }
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale as u64,
        magnitude % scale as u64,
        width = places as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_point_parses_signs_and_short_fractions() {
        assert_eq!(parse_fixed("5.25", 2), Some(525));
        assert_eq!(parse_fixed("-0.05", 2), Some(-5));
        assert_eq!(parse_fixed("7.5", 2), Some(750));
        assert_eq!(parse_fixed("12", 2), Some(1200));
        assert_eq!(parse_fixed("1.234", 2), None);
        assert_eq!(parse_fixed("1e3", 2), None);
        assert_eq!(parse_fixed("-", 2), None);
    }

    proptest! {
        #[test]
        fn fixed_point_round_trips(value in -10_000_000i64..10_000_000, places in 0u32..7) {
            prop_assert_eq!(parse_fixed(&format_fixed(value, places), places), Some(value));
        }
    }
}
