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

// `is_multiple_of` needs Rust 1.87; the workspace promises 1.80.
#[allow(clippy::manual_is_multiple_of)]
fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Checks a `YYYYMMDD` calendar day.
pub fn check_date(value: u32) -> Result<(), IdentifierError> {
    let (year, month, day) = (value / 10_000, value / 100 % 100, value % 100);
    let ok = (1900..=2999).contains(&year) && day >= 1 && day <= days_in_month(year, month);
    if ok {
        Ok(())
    } else {
        Err(IdentifierError::Date(value))
    }
}

/// The UTC calendar day (`YYYYMMDD`) containing unix time `time_s`.
///
/// Howard Hinnant's `civil_from_days`, in integers only (deterministic).
pub fn day_of(time_s: u64) -> u32 {
    let days = (time_s / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Years beyond u32 range cannot come from a u64 of seconds divided by 86 400
    // in any realistic payload; clamp instead of wrapping.
    let value = year.clamp(0, 400_000) * 10_000 + month * 100 + day;
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Unix time `time_s` as people read it in a message: `2026-12-01 14:34:56 UTC`
/// (integers only, so a processor may put it in state or an error).
pub fn utc_time_text(time_s: u64) -> String {
    let day = day_of(time_s);
    let seconds = time_s % 86_400;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        day / 10_000,
        day / 100 % 100,
        day % 100,
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
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
        // Absurd times give an absurd but panic-free answer.
        let _ = day_of(u64::MAX);
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
        fn day_of_is_monotonic(a in 0u64..32_503_680_000, b in 0u64..32_503_680_000) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(day_of(lo) <= day_of(hi));
        }
    }
}
