//! Parsing what a pharmacy scanner or a partner sends: GTINs (check digit,
//! normalised to 14 digits), serials, lots, GS1 Digital Link paths and the
//! YYMMDD expiry of AI 17. Pure functions; errors name the offending value.
use chrono::{Months, NaiveDate};

use crate::error::ApiError;

/// Normalises a GTIN-8/12/13/14 to 14 digits after checking its check digit
/// (the ledger's own rule, `coldchain_processors::identifiers`), as a 400 error.
pub fn normalize_gtin(gtin: &str) -> Result<String, ApiError> {
    if gtin.len() > 14 {
        // Don't echo hostile input back at length.
        return Err(ApiError::bad_request(
            "bad_gtin",
            format!("GTIN {:?} must be 8, 12, 13 or 14 digits", shorten(gtin)),
        ));
    }
    coldchain_processors::identifiers::normalize_gtin(gtin)
        .map_err(|e| ApiError::bad_request("bad_gtin", e.to_string()))
}

/// A serial or lot: 1–20 printable ASCII characters without spaces or slashes.
pub fn check_code(kind: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 20
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_identifier",
            format!(
                "{kind} {:?} must be 1 to 20 printable characters without '/'",
                shorten(value)
            ),
        ))
    }
}

/// GS1 AI 17 (YYMMDD) as YYYYMMDD, years 2000-2099; day 00 means the last
/// day of the month (GS1 General Specifications), and any other day must
/// exist in that month (`270231` is refused, not stored as 20270231).
pub fn expiry_from_yymmdd(value: &str) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_expiry",
            format!("expiry {:?} must be YYMMDD (GS1 AI 17)", shorten(value)),
        )
    };
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let number: u32 = value.parse().map_err(|_| bad())?;
    let (yy, mm, dd) = (number / 10000, number / 100 % 100, number % 100);
    let year = 2000 + yy as i32;
    let date = if dd == 0 {
        NaiveDate::from_ymd_opt(year, mm, 1)
            .and_then(|first| first.checked_add_months(Months::new(1)))
            .and_then(|next| next.pred_opt())
    } else {
        NaiveDate::from_ymd_opt(year, mm, dd)
    };
    let date = date.ok_or_else(|| {
        ApiError::bad_request(
            "bad_expiry",
            format!(
                "expiry {value:?} (YYMMDD, GS1 AI 17) names no calendar day: month {mm}, day {dd} of {year}; day 00 means the last day of the month"
            ),
        )
    })?;
    Ok(coldchain_processors::identifiers::yyyymmdd(date))
}

/// What a Digital Link path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigitalLink {
    pub gtin: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
}

/// Parses the segments after `/01/`: `{gtin}[/10/{lot}][/21/{serial}]`
/// (percent-decoded; unknown application identifiers are refused).
pub fn parse_digital_link(segments: &[String]) -> Result<DigitalLink, ApiError> {
    let Some((gtin, rest)) = segments.split_first() else {
        return Err(ApiError::bad_request(
            "bad_digital_link",
            "Digital Link needs /01/{gtin}".into(),
        ));
    };
    let mut link = DigitalLink {
        gtin: normalize_gtin(&decode(gtin)?)?,
        lot: None,
        serial: None,
    };
    let mut pairs = rest.chunks(2);
    for pair in &mut pairs {
        let [ai, value] = pair else {
            return Err(ApiError::bad_request(
                "bad_digital_link",
                format!(
                    "Digital Link application identifier {:?} has no value",
                    shorten(&pair[0])
                ),
            ));
        };
        let value = decode(value)?;
        match ai.as_str() {
            "10" if link.lot.is_none() => {
                check_code("lot", &value)?;
                link.lot = Some(value);
            }
            "21" if link.serial.is_none() => {
                check_code("serial", &value)?;
                link.serial = Some(value);
            }
            other => {
                return Err(ApiError::bad_request(
                    "bad_digital_link",
                    format!("Digital Link path may carry /10/{{lot}} and /21/{{serial}} once each, not /{}/", shorten(other)),
                ))
            }
        }
    }
    Ok(link)
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(
                "bad_encoding",
                "path segment is not UTF-8 after percent-decoding".into(),
            )
        })
}

/// At most 40 characters of untrusted input, for error messages.
pub fn shorten(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_with_valid_check_digit_is_padded_to_14() {
        assert_eq!(normalize_gtin("09501101530003").unwrap(), "09501101530003");
        assert_eq!(normalize_gtin("9501101530003").unwrap(), "09501101530003");
        assert_eq!(normalize_gtin("96385074").unwrap(), "00000096385074");
    }

    #[test]
    fn gtin_with_wrong_check_digit_or_letters_is_refused() {
        assert_eq!(normalize_gtin("09501101530004").unwrap_err().status, 400);
        assert!(normalize_gtin("0950110153000X").is_err());
        assert!(normalize_gtin("123").is_err());
        assert!(normalize_gtin("").is_err());
    }

    #[test]
    fn digital_link_path_yields_gtin_lot_and_serial() {
        let segs: Vec<String> = ["9501101530003", "10", "L%2D1", "21", "S1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let link = parse_digital_link(&segs).unwrap();
        assert_eq!(
            link,
            DigitalLink {
                gtin: "09501101530003".into(),
                lot: Some("L-1".into()),
                serial: Some("S1".into())
            }
        );
    }

    #[test]
    fn digital_link_with_unknown_or_dangling_identifier_is_refused() {
        let segs: Vec<String> = ["09501101530003", "99", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_digital_link(&segs).is_err());
        let segs: Vec<String> = ["09501101530003", "10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_digital_link(&segs).is_err());
    }

    #[test]
    fn yymmdd_expiry_converts_and_day_zero_is_month_end() {
        assert_eq!(expiry_from_yymmdd("270131").unwrap(), 20270131);
        assert_eq!(expiry_from_yymmdd("280200").unwrap(), 20280229);
        assert!(expiry_from_yymmdd("271301").is_err());
        assert!(expiry_from_yymmdd("2701").is_err());
    }

    #[test]
    fn day_zero_is_the_last_day_of_every_month() {
        assert_eq!(expiry_from_yymmdd("270200").unwrap(), 20270228);
        assert_eq!(expiry_from_yymmdd("000200").unwrap(), 20000229);
        assert_eq!(expiry_from_yymmdd("270400").unwrap(), 20270430);
        assert_eq!(expiry_from_yymmdd("271200").unwrap(), 20271231);
        assert_eq!(expiry_from_yymmdd("990100").unwrap(), 20990131);
    }

    #[test]
    fn a_day_the_month_does_not_have_is_refused() {
        for bad in ["270231", "270229", "270431", "270001", "270000", "271300"] {
            let err = expiry_from_yymmdd(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
        let err = expiry_from_yymmdd("270231").unwrap_err();
        assert!(
            err.message.contains("names no calendar day"),
            "{}",
            err.message
        );
        assert_eq!(expiry_from_yymmdd("280229").unwrap(), 20280229);
        for hostile in ["27013a", "+27013", "２７０１３１", "", "2701311"] {
            assert!(expiry_from_yymmdd(hostile).is_err(), "{hostile}");
        }
    }
}
