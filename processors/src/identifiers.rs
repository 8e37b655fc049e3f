//! Identifier rules: GS1 GTIN and GLN (mod-10 check digit), serial and lot
//! numbers, ISBT 128 donation identification numbers, record ids, public keys
//! and `YYYYMMDD` calendar days.
//!
//! Pure functions over strings and integers; no state, no I/O. Handlers call
//! them and turn an [`IdentifierError`] into an `InvalidTransaction`.
//!
//! What is accepted (also in `docs/families.md`):
//! - **GTIN**: 8, 12, 13 or 14 ASCII digits with a valid check digit; stored as
//!   GTIN-14 (left-padded with zeros).
//! - **GLN**: exactly 13 ASCII digits with a valid check digit.
//! - **serial** (GS1 AI 21) and **lot** (AI 10): 1–20 characters from
//!   `A–Z a–z 0–9 - . _` — the part of GS1 character set 82 that needs no
//!   escaping in a GS1 Digital Link path, a URL or a shell.
//! - **ISBT 128 donation id**: 13 characters, facility code 5 (`A–Z 0–9`), year 2
//!   digits, sequence 6 digits; upper case; flag characters are not part of it.
//! - **record ids** (organisation, device, shipment, request, offer): 1–64
//!   characters from `A–Z a–z 0–9 - . _ :`.
//! - **public keys**: compressed secp256k1, 66 lowercase hex starting `02`/`03`.
//! - **dates**: `YYYYMMDD` with year 1900–2999 and a real calendar day.
//! - **times**: unix seconds (UTC) up to 9999-12-31 23:59:59 ([`LATEST_TIME_S`]).
//!
//! Calendar arithmetic is chrono's (integer, proleptic Gregorian, built without
//! its `clock` feature, so nothing here can read the time of day).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};

/// Why an identifier was refused; each message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("GTIN {0:?} must be 8, 12, 13 or 14 digits")]
    GtinFormat(String),
    #[error("GTIN {value:?} has check digit {found}, expected {expected}")]
    GtinCheckDigit {
        value: String,
        found: u8,
        expected: u8,
    },
    #[error("GLN {0:?} must be exactly 13 digits")]
    GlnFormat(String),
    #[error("GLN {value:?} has check digit {found}, expected {expected}")]
    GlnCheckDigit {
        value: String,
        found: u8,
        expected: u8,
    },
    #[error("serial {0:?} must be 1-20 characters from A-Z a-z 0-9 - . _")]
    Serial(String),
    #[error("lot number {0:?} must be 1-20 characters from A-Z a-z 0-9 - . _")]
    Lot(String),
    #[error(
        "donation id {0:?} must be 13 characters: facility code (5 of A-Z 0-9), year (2 digits), sequence (6 digits)"
    )]
    DonationId(String),
    #[error("{kind} {value:?} must be 1-64 characters from A-Z a-z 0-9 - . _ :")]
    RecordId { kind: &'static str, value: String },
    #[error("public key {0:?} must be a compressed secp256k1 key: 66 lowercase hex characters starting with 02 or 03")]
    PublicKey(String),
    #[error("date {0} is not a calendar day written YYYYMMDD (years 1900-2999)")]
    Date(u32),
    #[error(
        "time {0} is after 9999-12-31 23:59:59 UTC; give unix time in seconds (not milliseconds)"
    )]
    Time(u64),
}

/// The GS1 mod-10 check digit of `body` (all digits but the check digit):
/// weights 3, 1, 3, 1, … from the right.
fn gs1_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

fn all_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a GTIN-8/12/13/14 and returns it as GTIN-14.
pub fn normalize_gtin(value: &str) -> Result<String, IdentifierError> {
    if !all_digits(value) || ![8, 12, 13, 14].contains(&value.len()) {
        return Err(IdentifierError::GtinFormat(value.to_string()));
    }
    let bytes = value.as_bytes();
    let (body, check) = bytes.split_at(bytes.len() - 1);
    let expected = gs1_check_digit(body);
    let found = check[0] - b'0';
    if found != expected {
        return Err(IdentifierError::GtinCheckDigit {
            value: value.to_string(),
            found,
            expected,
        });
    }
    Ok(format!("{value:0>14}"))
}

/// Checks a 13-digit GLN.
pub fn check_gln(value: &str) -> Result<(), IdentifierError> {
    if !all_digits(value) || value.len() != 13 {
        return Err(IdentifierError::GlnFormat(value.to_string()));
    }
    let bytes = value.as_bytes();
    let expected = gs1_check_digit(&bytes[..12]);
    let found = bytes[12] - b'0';
    if found != expected {
        return Err(IdentifierError::GlnCheckDigit {
            value: value.to_string(),
            found,
            expected,
        });
    }
    Ok(())
}

/// Appends the GS1 check digit to `body` (digits only): used to build valid
/// GTINs and GLNs in tests and demos.
pub fn with_check_digit(body: &str) -> Option<String> {
    if !all_digits(body) {
        return None;
    }
    Some(format!("{body}{}", gs1_check_digit(body.as_bytes())))
}

fn is_code_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

fn is_code(value: &str) -> bool {
    (1..=20).contains(&value.len()) && value.bytes().all(is_code_char)
}

/// Checks a pack serial number (GS1 AI 21, the subset described in the module doc).
pub fn check_serial(value: &str) -> Result<(), IdentifierError> {
    if is_code(value) {
        Ok(())
    } else {
        Err(IdentifierError::Serial(value.to_string()))
    }
}

/// Checks a lot (batch) number (GS1 AI 10, same character subset as serials).
pub fn check_lot(value: &str) -> Result<(), IdentifierError> {
    if is_code(value) {
        Ok(())
    } else {
        Err(IdentifierError::Lot(value.to_string()))
    }
}

/// Checks an ISBT 128 donation identification number (13 characters, no flags).
pub fn check_donation_id(value: &str) -> Result<(), IdentifierError> {
    let bytes = value.as_bytes();
    let ok = bytes.len() == 13
        && bytes[..5]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && bytes[5..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err(IdentifierError::DonationId(value.to_string()))
    }
}

/// Checks a record id (organisation, device, shipment, request, offer id);
/// `kind` names it in the error message.
pub fn check_record_id(kind: &'static str, value: &str) -> Result<(), IdentifierError> {
    let ok = (1..=64).contains(&value.len()) && value.bytes().all(|b| is_code_char(b) || b == b':');
    if ok {
        Ok(())
    } else {
        Err(IdentifierError::RecordId {
            kind,
            value: value.to_string(),
        })
    }
}

/// Checks the textual form of a compressed secp256k1 public key (the form
/// Sawtooth puts in `signer_public_key`). It does not check the point is on the curve.
pub fn check_public_key(value: &str) -> Result<(), IdentifierError> {
    let ok = value.len() == 66
        && (value.starts_with("02") || value.starts_with("03"))
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(IdentifierError::PublicKey(value.to_string()))
    }
}

/// The latest unix time any coldchain record may carry: 9999-12-31 23:59:59 UTC,
/// the end of the four-digit years that `YYYYMMDD` days and RFC 3339 times can write.
pub const LATEST_TIME_S: u64 = 253_402_300_799;

/// Checks a unix time (seconds, UTC) is one the calendar functions can name:
/// at most [`LATEST_TIME_S`]. The usual cause of a bigger one is milliseconds
/// given where seconds are expected, which the message says.
pub fn check_time(time_s: u64) -> Result<(), IdentifierError> {
    if time_s <= LATEST_TIME_S {
        Ok(())
    } else {
        Err(IdentifierError::Time(time_s))
    }
}

/// The UTC date and time of unix time `time_s`, `None` past [`LATEST_TIME_S`].
///
/// chrono's integer calendar (proleptic Gregorian): no clock, no time zone
/// database, no floating point, so processors may use it.
pub fn utc_date_time(time_s: u64) -> Option<NaiveDateTime> {
    check_time(time_s).ok()?;
    let seconds = i64::try_from(time_s).ok()?;
    DateTime::from_timestamp(seconds, 0).map(|time| time.naive_utc())
}

/// A calendar day as the `YYYYMMDD` number the ledger stores.
pub fn yyyymmdd(date: NaiveDate) -> u32 {
    // Years before 0 cannot come from a u64 time or a checked date; clamp
    // rather than wrap.
    let year = u32::try_from(date.year()).unwrap_or(0);
    year * 10_000 + date.month() * 100 + date.day()
}

/// The calendar day of a `YYYYMMDD` number, `None` when it names no real day.
pub fn date_of_yyyymmdd(value: u32) -> Option<NaiveDate> {
    let year = i32::try_from(value / 10_000).ok()?;
    NaiveDate::from_ymd_opt(year, value / 100 % 100, value % 100)
}

/// Checks a `YYYYMMDD` calendar day (years 1900-2999).
pub fn check_date(value: u32) -> Result<(), IdentifierError> {
    match date_of_yyyymmdd(value) {
        Some(date) if (1900..=2999).contains(&date.year()) => Ok(()),
        _ => Err(IdentifierError::Date(value)),
    }
}

/// The UTC calendar day (`YYYYMMDD`) containing unix time `time_s`.
///
/// Past [`LATEST_TIME_S`] it answers `u32::MAX`, later than every real day,
/// so an expiry check against it fails closed; the families refuse such
/// payload times before any rule runs (`registry::request::payload_time`).
pub fn day_of(time_s: u64) -> u32 {
    utc_date_time(time_s).map_or(u32::MAX, |time| yyyymmdd(time.date()))
}

/// Unix time `time_s` as people read it in a message: `2026-12-01 14:34:56 UTC`
/// (integers only, so a processor may put it in state or an error). A time
/// past [`LATEST_TIME_S`] is written as its number of seconds, never as a
/// wrong date.
pub fn utc_time_text(time_s: u64) -> String {
    match utc_date_time(time_s) {
        Some(time) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second()
        ),
        None => format!("unix time {time_s} s (after the year 9999)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utc_time_text_reads_as_a_calendar_time() {
        assert_eq!(utc_time_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time_text(1_796_104_496), "2026-12-01 05:54:56 UTC");
        assert_eq!(utc_time_text(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn known_gtins_are_accepted_and_padded() {
        assert_eq!(normalize_gtin("09501101530003").unwrap(), "09501101530003");
        assert_eq!(normalize_gtin("9501101530003").unwrap(), "09501101530003");
        assert_eq!(normalize_gtin("96385074").unwrap(), "00000096385074");
        assert_eq!(normalize_gtin("036000291452").unwrap(), "00036000291452");
    }

    #[test]
    fn gtin_with_wrong_check_digit_names_the_expected_digit() {
        let err = normalize_gtin("09501101530004").unwrap_err();
        assert_eq!(
            err,
            IdentifierError::GtinCheckDigit {
                value: "09501101530004".into(),
                found: 4,
                expected: 3
            }
        );
        assert!(err.to_string().contains("09501101530004"));
    }

    #[test]
    fn gtin_of_wrong_length_or_letters_is_refused() {
        for bad in [
            "",
            "1234567",
            "12345678901",
            "123456789012345",
            "0950110153000a",
        ] {
            assert!(matches!(
                normalize_gtin(bad),
                Err(IdentifierError::GtinFormat(_))
            ));
        }
    }

    #[test]
    fn gln_check_digit_is_enforced() {
        assert!(check_gln("0614141000036").is_ok());
        let good = with_check_digit("061414100001").unwrap();
        assert!(check_gln(&good).is_ok());
        let last = good.as_bytes()[12] - b'0';
        let bad = format!("061414100001{}", (last + 1) % 10);
        assert!(matches!(
            check_gln(&bad),
            Err(IdentifierError::GlnCheckDigit { .. })
        ));
        assert!(matches!(
            check_gln("06141410000"),
            Err(IdentifierError::GlnFormat(_))
        ));
    }

    #[test]
    fn serials_and_lots_follow_the_documented_subset() {
        assert!(check_serial("ABC-123.x_9").is_ok());
        assert!(check_serial("12345678901234567890").is_ok());
        assert!(check_serial("123456789012345678901").is_err());
        assert!(check_serial("").is_err());
        assert!(check_serial("A/B").is_err());
        assert!(check_lot("L 1").is_err());
        assert!(check_lot("L2027-01").is_ok());
    }

    #[test]
    fn donation_ids_have_facility_year_sequence() {
        assert!(check_donation_id("W1234260001234").is_err()); // 14 characters
        assert!(check_donation_id("W123426000123").is_ok());
        assert!(check_donation_id("w123426000123").is_err());
        assert!(check_donation_id("W12342600012A").is_err());
    }

    #[test]
    fn dates_must_be_calendar_days() {
        assert!(check_date(20240229).is_ok());
        assert!(check_date(20230229).is_err());
        assert!(check_date(21000229).is_err());
        assert!(check_date(20000229).is_ok());
        assert!(check_date(20271301).is_err());
        assert!(check_date(0).is_err());
    }

    #[test]
    fn day_of_unix_time_is_the_utc_calendar_day() {
        assert_eq!(day_of(0), 19700101);
        assert_eq!(day_of(951_782_400), 20000229);
        assert_eq!(day_of(1_767_225_599), 20251231);
        assert_eq!(day_of(1_767_225_600), 20260101);
        // Times past the year 9999 give a day later than every real one, no panic.
        assert_eq!(day_of(u64::MAX), u32::MAX);
    }

    #[test]
    fn leap_days_follow_the_gregorian_rules() {
        // 2024 leap (÷4), 2100 not (÷100), 2000 leap (÷400), 1900 not.
        assert_eq!(day_of(1_709_164_800), 20240229);
        assert_eq!(day_of(1_709_251_200), 20240301);
        assert_eq!(day_of(4_107_456_000), 21000228);
        assert_eq!(day_of(4_107_542_400), 21000301);
        assert!(check_date(19000229).is_err());
        assert!(check_date(19000228).is_ok());
        assert!(check_date(29991231).is_ok());
        assert!(check_date(30000101).is_err());
        assert!(check_date(18991231).is_err());
        assert!(check_date(20240100).is_err());
        assert!(check_date(20240431).is_err());
    }

    #[test]
    fn the_last_second_of_9999_is_the_last_time_with_a_date() {
        assert_eq!(utc_time_text(LATEST_TIME_S), "9999-12-31 23:59:59 UTC");
        assert_eq!(day_of(LATEST_TIME_S), 99991231);
        assert!(check_time(LATEST_TIME_S).is_ok());
        assert_eq!(
            check_time(LATEST_TIME_S + 1),
            Err(IdentifierError::Time(LATEST_TIME_S + 1))
        );
        assert_eq!(day_of(LATEST_TIME_S + 1), u32::MAX);
    }

    #[test]
    fn milliseconds_are_refused_with_a_hint() {
        // 2026-12-01 in milliseconds is year ~58 900 in seconds.
        let err = check_time(1_796_104_496_000).unwrap_err();
        assert!(err.to_string().contains("not milliseconds"), "{err}");
        assert_eq!(
            utc_time_text(1_796_104_496_000),
            "unix time 1796104496000 s (after the year 9999)"
        );
        assert_eq!(
            utc_time_text(u64::MAX),
            "unix time 18446744073709551615 s (after the year 9999)"
        );
    }

    #[test]
    fn yyyymmdd_numbers_round_trip_through_calendar_days() {
        let day = date_of_yyyymmdd(20280229).unwrap();
        assert_eq!(yyyymmdd(day), 20280229);
        assert!(date_of_yyyymmdd(20270229).is_none());
        assert!(date_of_yyyymmdd(u32::MAX).is_none());
        assert!(date_of_yyyymmdd(0).is_none());
    }

    #[test]
    fn public_keys_must_be_compressed_hex() {
        let key = format!("02{}", "ab".repeat(32));
        assert!(check_public_key(&key).is_ok());
        assert!(check_public_key(&key.to_uppercase()).is_err());
        assert!(check_public_key(&format!("04{}", "ab".repeat(32))).is_err());
    }

    proptest! {
        #[test]
        fn any_body_with_its_check_digit_is_a_valid_gtin13(body in "[0-9]{12}") {
            let gtin = with_check_digit(&body).unwrap();
            prop_assert_eq!(normalize_gtin(&gtin).unwrap(), format!("0{gtin}"));
        }

        #[test]
        fn changing_one_digit_breaks_the_check(body in "[0-9]{13}", pos in 0usize..14, delta in 1u8..10) {
            let gtin = with_check_digit(&body).unwrap();
            let mut bytes = gtin.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(normalize_gtin(&changed).is_err());
        }

        #[test]
        fn normalisation_is_idempotent(body in "[0-9]{7}|[0-9]{11}|[0-9]{12}|[0-9]{13}") {
            let gtin = with_check_digit(&body).unwrap();
            let once = normalize_gtin(&gtin).unwrap();
            prop_assert_eq!(normalize_gtin(&once).unwrap(), once.clone());
        }

        #[test]
        fn parsers_never_panic_on_arbitrary_text(text in "\\PC{0,30}") {
            let _ = normalize_gtin(&text);
            let _ = check_gln(&text);
            let _ = check_serial(&text);
            let _ = check_donation_id(&text);
            let _ = check_record_id("org id", &text);
            let _ = check_public_key(&text);
        }

        #[test]
        fn day_of_always_gives_a_valid_date(time_s in 0u64..32_503_680_000) {
            prop_assert!(check_date(day_of(time_s)).is_ok());
        }

        #[test]
        fn day_and_text_agree_for_any_time(time_s in 0u64..=LATEST_TIME_S) {
            let day = day_of(time_s);
            let text = utc_time_text(time_s);
            prop_assert_eq!(
                &text[..10],
                format!("{:04}-{:02}-{:02}", day / 10_000, day / 100 % 100, day % 100)
            );
        }

        #[test]
        fn calendar_functions_never_panic(time_s in any::<u64>(), value in any::<u32>()) {
            let _ = day_of(time_s);
            let _ = utc_time_text(time_s);
            let _ = check_date(value);
            let _ = date_of_yyyymmdd(value);
        }

        #[test]
        fn day_of_is_monotonic(a in 0u64..32_503_680_000, b in 0u64..32_503_680_000) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(day_of(lo) <= day_of(hi));
        }
    }
}
