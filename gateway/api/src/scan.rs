//! What a barcode scanner types, read with the GS1 General Specifications'
//! rules: the one parser the API (`/api/v1/verify?scan=`), the page and
//! `coldchain verify '<scan>'` share, so the three never disagree.
//!
//! Accepted forms of the same pack's barcode:
//! - human-readable element string: `(01)09501101530003(17)281231(10)VAX-2026-A(21)A0002`;
//! - raw element string as a GS1 DataMatrix/GS1-128 scanner sends it: fields
//!   concatenated, a variable-length field ended by FNC1 (ASCII GS, 0x1D) unless
//!   it is last, optionally a leading FNC1;
//! - either of those after a symbology identifier: `]d2` (GS1 DataMatrix),
//!   `]C1` (GS1-128), `]Q3` (GS1 QR Code), `]e0` (GS1 DataBar), `]J1` (GS1 DotCode);
//! - a GS1 Digital Link URI or path (`https://id.example/01/…/10/…/21/…?17=YYMMDD`),
//!   also after a `]Q1`/`]d1` identifier (a URL in a non-GS1 symbol).
//!
//! Application identifiers read: 01 GTIN (14 digits, check digit checked),
//! 17 expiry (YYMMDD; day 00 is the last day of the month), 10 lot and 21
//! serial (1–20 characters of GS1 character set 82). Recognised and checked
//! but not used for the verdict: 11, 13, 15, 16 (dates) and 710–714 (national
//! healthcare reimbursement numbers), which real medicine packs carry. Any
//! other AI is refused with its number: a field of unknown length cannot be
//! skipped safely, and guessing would shift every field after it.
//!
//! Pure functions; errors are 400 `bad_scan` answers naming what was wrong.
use crate::error::ApiError;
use crate::identifiers::{check_code, expiry_from_yymmdd, normalize_gtin, parse_digital_link};

/// ASCII group separator: FNC1 as a scanner transmits it.
pub const GS: char = '\u{1d}';
/// "SYMBOL FOR GROUP SEPARATOR", which some tools paste in its place.
const GS_PICTURE: char = '\u{241d}';
/// Longest scan read (a GS1 symbol carries far less; a Digital Link URL fits).
const MAX_SCAN_LEN: usize = 512;

/// The barcode form a scan was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanForm {
    /// `(01)…(17)…` as printed under the barcode.
    HumanReadable,
    /// FNC1-separated fields as a scanner sends them.
    ElementString,
    /// A GS1 Digital Link URI or path.
    DigitalLink,
}

/// What a scanned barcode names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Scan {
    pub form: ScanForm,
    /// The symbology identifier the scanner prefixed (`]d2`), if any.
    pub symbology: Option<String>,
    /// 14 digits.
    pub gtin: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    /// AI 17 as YYYYMMDD (day 00 resolved to the month's last day).
    pub expiry: Option<u32>,
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request("bad_scan", message)
}

/// A character for an error message: printable as itself, else its code.
fn show(c: char) -> String {
    if c == ' ' {
        "a space".into()
    } else if c == GS {
        "a GS separator".into()
    } else if c.is_ascii_graphic() {
        format!("{c:?}")
    } else {
        format!("U+{:04X}", u32::from(c))
    }
}

/// Reads one scan in any of the accepted forms.
pub fn parse_scan(text: &str) -> Result<Scan, ApiError> {
    if text.len() > MAX_SCAN_LEN {
        return Err(bad(format!(
            "the scan is {} bytes long; a GS1 barcode holds at most {MAX_SCAN_LEN}: scan one barcode at a time",
            text.len()
        )));
    }
    // Keyboard-wedge scanners end with Enter or Tab; people paste with spaces.
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if text.is_empty() {
        return Err(bad(
            "the scan is empty: scan the pack's 2D barcode, or paste its text".into(),
        ));
    }
    let (symbology, body) = split_symbology(text)?;
    if body.contains("/01/") || body.starts_with("01/") {
        let mut scan = parse_digital_link_uri(body)?;
        scan.symbology = symbology;
        return Ok(scan);
    }
    if symbology
        .as_deref()
        .is_some_and(|s| !GS1_SYMBOLOGIES.contains(&s))
    {
        return Err(bad(format!(
            "symbology identifier {} is not a GS1 barcode (GS1 DataMatrix sends ]d2, GS1-128 ]C1, GS1 QR ]Q3, GS1 DataBar ]e0): scan the pack's GS1 barcode",
            symbology.unwrap_or_default()
        )));
    }
    let body = body.replace(GS_PICTURE, &GS.to_string());
    let fields = if body.starts_with('(') {
        human_readable_fields(&body)?
    } else {
        element_string_fields(&body)?
    };
    let form = if body.starts_with('(') {
        ScanForm::HumanReadable
    } else {
        ScanForm::ElementString
    };
    let mut scan = Scan {
        form,
        symbology,
        gtin: String::new(),
        lot: None,
        serial: None,
        expiry: None,
    };
    let mut seen: Vec<&str> = Vec::new();
    for (ai, value) in &fields {
        if seen.contains(ai) {
            return Err(bad(format!(
                "application identifier ({ai}) appears twice in the scan"
            )));
        }
        seen.push(ai);
        match *ai {
            "01" => scan.gtin = read_gtin(value)?,
            "17" => scan.expiry = Some(read_date(ai, value)?),
            "10" => scan.lot = Some(read_code(ai, "lot", value)?),
            "21" => scan.serial = Some(read_code(ai, "serial", value)?),
            "11" | "13" | "15" | "16" => {
                read_date(ai, value)?;
            }
            _ => {
                read_code(ai, "national healthcare reimbursement number", value)?;
            }
        }
    }
    if scan.gtin.is_empty() {
        return Err(bad(
            "the scan has no GTIN, application identifier (01): scan the pack's 2D barcode (the one with (01) under it)".into(),
        ));
    }
    Ok(scan)
}

/// Symbology identifiers of GS1 element strings.
const GS1_SYMBOLOGIES: [&str; 5] = ["]d2", "]C1", "]Q3", "]e0", "]J1"];

/// Splits off a `]` + letter + digit symbology identifier.
fn split_symbology(text: &str) -> Result<(Option<String>, &str), ApiError> {
    let Some(rest) = text.strip_prefix(']') else {
        return Ok((None, text));
    };
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(letter), Some(digit)) if letter.is_ascii_alphabetic() && digit.is_ascii_digit() => {
            Ok((Some(format!("]{letter}{digit}")), &rest[2..]))
        }
        _ => Err(bad(format!(
            "the scan starts with ']' but not with a symbology identifier such as ]d2: {:?}",
            crate::identifiers::shorten(text)
        ))),
    }
}

/// A known AI's value: fixed length in digits, or variable up to 20.
#[derive(Clone, Copy)]
enum Length {
    Fixed(usize),
    Variable,
}

/// The AIs this parser knows, with their length rule.
fn known_ai(ai: &str) -> Option<Length> {
    match ai {
        "01" => Some(Length::Fixed(14)),
        "11" | "13" | "15" | "16" | "17" => Some(Length::Fixed(6)),
        "10" | "21" | "710" | "711" | "712" | "713" | "714" => Some(Length::Variable),
        _ => None,
    }
}

fn unknown_ai(ai: &str) -> ApiError {
    bad(format!(
        "application identifier ({ai}) is not one this service reads; it reads (01) GTIN, (17) expiry, (10) lot, (21) serial (and skips (11), (13), (15), (16), (710)-(714)): scan the pack's 2D barcode, or type GTIN, lot and serial"
    ))
}

/// `(01)…(17)…`: an AI is 2–4 digits in brackets; anything else is value
/// (character set 82 allows brackets inside a lot or serial).
fn human_readable_fields(body: &str) -> Result<Vec<(&'static str, String)>, ApiError> {
    let bytes = body.as_bytes();
    let mut starts: Vec<(usize, usize, &str)> = Vec::new(); // (open, value start, ai)
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'(' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if (2..=4).contains(&digits) && bytes.get(i + 1 + digits) == Some(&b')') {
                starts.push((i, i + 2 + digits, &body[i + 1..i + 1 + digits]));
                i += 2 + digits;
                continue;
            }
        }
        i += 1;
    }
    let mut fields = Vec::new();
    for (n, &(_, value_start, ai)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(body.len(), |next| next.0);
        let ai = static_ai(ai)?;
        let value = body[value_start..end].trim_matches(|c| c == ' ' || c == GS);
        if let Length::Fixed(len) = known_ai(ai).ok_or_else(|| unknown_ai(ai))? {
            if value.len() != len || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!(
                    "({ai}) must be followed by {len} digits, not {:?}",
                    crate::identifiers::shorten(value)
                )));
            }
        }
        fields.push((ai, value.to_string()));
    }
    match starts.first() {
        Some((0, _, _)) => Ok(fields),
        _ => Err(bad(format!(
            "{:?} is not a GS1 element string: it should start with an application identifier such as (01)",
            crate::identifiers::shorten(body)
        ))),
    }
}

/// The AI as a static string, or the unknown-AI error naming it.
fn static_ai(ai: &str) -> Result<&'static str, ApiError> {
    const KNOWN: [&str; 13] = [
        "01", "10", "11", "13", "15", "16", "17", "21", "710", "711", "712", "713", "714",
    ];
    KNOWN
        .iter()
        .find(|k| **k == ai)
        .copied()
        .ok_or_else(|| unknown_ai(ai))
}

/// Raw fields: AI digits, then a fixed-length value, or a variable value up
/// to the next GS or the end.
fn element_string_fields(body: &str) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut rest = body.strip_prefix(GS).unwrap_or(body);
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let at = body.len() - rest.len() + 1;
        let ai = if rest.starts_with("71") {
            rest.get(..3)
        } else {
            rest.get(..2)
        }
        .filter(|ai| ai.bytes().all(|b| b.is_ascii_digit()));
        let Some(ai) = ai else {
            let first = rest.chars().next().map(show).unwrap_or_default();
            return Err(bad(format!(
                "character {at} ({first}) should start an application identifier (two digits such as 01): paste the scan unchanged, or type it as (01)…(17)…(10)…(21)…"
            )));
        };
        let ai = static_ai(ai).map_err(|_| {
            bad(format!(
                "application identifier ({}…) at character {at} is not one this service reads; it reads (01) GTIN, (17) expiry, (10) lot, (21) serial (and skips (11), (13), (15), (16), (710)-(714))",
                &ai[..2]
            ))
        })?;
        rest = &rest[ai.len()..];
        match known_ai(ai).ok_or_else(|| unknown_ai(ai))? {
            Length::Fixed(len) => {
                let value = rest
                    .get(..len)
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
                let Some(value) = value else {
                    return Err(bad(format!(
                        "({ai}) must be followed by {len} digits, not {:?}",
                        crate::identifiers::shorten(rest)
                    )));
                };
                fields.push((ai, value.to_string()));
                rest = &rest[len..];
                // Some printers put FNC1 after a fixed-length field too.
                rest = rest.strip_prefix(GS).unwrap_or(rest);
            }
            Length::Variable => {
                let end = rest.find(GS).unwrap_or(rest.len());
                fields.push((ai, rest[..end].to_string()));
                rest = rest[end..].strip_prefix(GS).unwrap_or(&rest[end..]);
            }
        }
    }
    if fields.is_empty() {
        return Err(bad("the scan holds only separators".into()));
    }
    Ok(fields)
}

fn read_gtin(value: &str) -> Result<String, ApiError> {
    if value.len() != 14 {
        return Err(bad(format!(
            "(01) must be followed by 14 digits, not {:?}",
            crate::identifiers::shorten(value)
        )));
    }
    normalize_gtin(value).map_err(|e| bad(format!("(01): {}", e.message)))
}

fn read_date(ai: &str, value: &str) -> Result<u32, ApiError> {
    expiry_from_yymmdd(value).map_err(|_| {
        bad(format!(
            "({ai}) {:?} is not a date YYMMDD (month 01-12, day 00-31; day 00 means the month's last day)",
            crate::identifiers::shorten(value)
        ))
    })
}

/// GS1 AI encodable character set 82, which lots and serials are made of.
fn in_set_82(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c)
}

fn read_code(ai: &str, what: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(bad(format!("({ai}) {what} is empty")));
    }
    if let Some(c) = value.chars().find(|c| !in_set_82(*c)) {
        return Err(bad(format!(
            "({ai}) {what} {:?} contains {}, which GS1 barcodes cannot carry (letters, digits and !\"%&'()*+,-./:;<=>?_ only)",
            crate::identifiers::shorten(value),
            show(c)
        )));
    }
    if value.chars().count() > 20 {
        return Err(bad(format!(
            "({ai}) {what} {:?}… is longer than 20 characters: in a scan a separator (GS) may be missing after it; type it as (01)…(17)…(10)…(21)…",
            crate::identifiers::shorten(value)
        )));
    }
    if matches!(ai, "10" | "21") {
        // The ledger's own rule for lots and serials (no '/').
        check_code(what, value).map_err(|e| bad(format!("({ai}) {}", e.message)))?;
    }
    Ok(value.to_string())
}

/// A Digital Link URI or path: `[scheme://host]/…/01/{gtin}[/10/{lot}][/21/{serial}][?17=YYMMDD]`.
pub fn parse_digital_link_uri(link: &str) -> Result<Scan, ApiError> {
    let without_scheme = link.split_once("://").map_or(link, |(_, rest)| rest);
    let path_start = if link.contains("://") {
        without_scheme.find('/').unwrap_or(without_scheme.len())
    } else {
        0
    };
    let rest = &without_scheme[path_start..];
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let Some(start) = parts.iter().position(|p| p == "01") else {
        return Err(ApiError::bad_request(
            "bad_digital_link",
            format!(
                "Digital Link {:?} has no /01/{{gtin}} part",
                crate::identifiers::shorten(link)
            ),
        ));
    };
    let parsed = parse_digital_link(&parts[start + 1..])?;
    let mut expiry = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some(("17", yymmdd)) = pair.split_once('=') {
            expiry = Some(expiry_from_yymmdd(yymmdd)?);
        }
    }
    Ok(Scan {
        form: ScanForm::DigitalLink,
        symbology: None,
        gtin: parsed.gtin,
        lot: parsed.lot,
        serial: parsed.serial,
        expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTIN: &str = "09501101530003";

    fn pack(scan: &Scan) -> (&str, Option<&str>, Option<&str>, Option<u32>) {
        (
            scan.gtin.as_str(),
            scan.lot.as_deref(),
            scan.serial.as_deref(),
            scan.expiry,
        )
    }

    fn message(text: &str) -> String {
        let error = parse_scan(text).expect_err(text);
        assert_eq!(error.status, 400, "{text:?}");
        error.message
    }

    const EXPECTED: (&str, Option<&str>, Option<&str>, Option<u32>) =
        (GTIN, Some("VAX-2026-A"), Some("A0002"), Some(20281231));

    #[test]
    fn human_readable_element_string_is_read() {
        let scan = parse_scan("(01)09501101530003(17)281231(10)VAX-2026-A(21)A0002").unwrap();
        assert_eq!(pack(&scan), EXPECTED);
        assert_eq!(scan.form, ScanForm::HumanReadable);
        // Spaces as people type them, and a trailing Enter.
        let scan =
            parse_scan(" (01) 09501101530003 (17) 281231 (10) VAX-2026-A (21) A0002\r\n").unwrap();
        assert_eq!(pack(&scan), EXPECTED);
    }

    #[test]
    fn raw_element_string_with_fnc1_separators_is_read_in_any_field_order() {
        let raw = "\u{1d}01095011015300031728123110VAX-2026-A\u{1d}21A0002";
        let scan = parse_scan(raw).unwrap();
        assert_eq!(pack(&scan), EXPECTED);
        assert_eq!(scan.form, ScanForm::ElementString);
        // A GTIN alone is a scan (verification then asks for a lot or serial).
        assert_eq!(parse_scan("0109501101530003").unwrap().gtin, GTIN);
        // Serial before expiry; no leading FNC1.
        let scan = parse_scan("010950110153000321A0002\u{1d}17281231").unwrap();
        assert_eq!(scan.serial.as_deref(), Some("A0002"));
        assert_eq!(scan.expiry, Some(20281231));
    }

    #[test]
    fn symbology_identifiers_are_stripped() {
        for id in ["]d2", "]C1", "]Q3", "]e0"] {
            let text = format!("{id}01095011015300031728123110VAX-2026-A\u{1d}21A0002");
            let scan = parse_scan(&text).unwrap();
            assert_eq!(pack(&scan), EXPECTED, "{id}");
            assert_eq!(scan.symbology.as_deref(), Some(id));
        }
        let scan =
            parse_scan("]Q1https://id.example/01/09501101530003/10/VAX-2026-A/21/A0002?17=281231")
                .unwrap();
        assert_eq!(pack(&scan), EXPECTED);
        assert_eq!(scan.form, ScanForm::DigitalLink);
        assert!(message("]d1010950110153000321A").contains("]d1 is not a GS1 barcode"));
    }

    #[test]
    fn digital_link_is_read() {
        let scan =
            parse_scan("https://id.example.com/01/09501101530003/10/VAX-2026-A/21/A0002?17=281231")
                .unwrap();
        assert_eq!(pack(&scan), EXPECTED);
        let scan = parse_scan("/01/9501101530003/21/A0002").unwrap();
        assert_eq!(scan.gtin, GTIN);
        assert_eq!(scan.lot, None);
    }

    #[test]
    fn fixed_length_fields_followed_by_a_separator_are_tolerated() {
        let scan =
            parse_scan("]d2\u{1d}0109501101530003\u{1d}17281231\u{1d}10VAX-2026-A\u{1d}21A0002")
                .unwrap();
        assert_eq!(pack(&scan), EXPECTED);
    }

    #[test]
    fn expiry_day_00_is_the_last_day_of_the_month() {
        let scan = parse_scan("(01)09501101530003(17)280200(21)A1").unwrap();
        assert_eq!(scan.expiry, Some(20280229));
        let scan = parse_scan("(01)09501101530003(17)270200(21)A1").unwrap();
        assert_eq!(scan.expiry, Some(20270228));
    }

    #[test]
    fn brackets_inside_a_lot_are_value_not_identifiers() {
        let scan = parse_scan("(01)09501101530003(10)LOT(A)7(21)S1").unwrap();
        assert_eq!(scan.lot.as_deref(), Some("LOT(A)7"));
    }

    #[test]
    fn recognised_fields_not_used_for_the_verdict_are_checked_and_skipped() {
        let scan =
            parse_scan("(01)09501101530003(11)250115(17)281231(10)VAX-2026-A(21)A0002(712)NHRN-1")
                .unwrap();
        assert_eq!(pack(&scan), EXPECTED);
        let raw = "01095011015300031125011517281231712NHRN-1\u{1d}10VAX-2026-A\u{1d}21A0002";
        assert_eq!(pack(&parse_scan(raw).unwrap()), EXPECTED);
    }

    #[test]
    fn unknown_identifiers_are_named() {
        assert!(message("(01)09501101530003(99)X(21)A").contains("(99)"));
        assert!(message("(01)09501101530003(7003)2501011200(21)A").contains("(7003)"));
        assert!(message("010950110153000399ABC").contains("(99…) at character 17"));
    }

    #[test]
    fn missing_gtin_bad_check_digit_and_bad_dates_are_named() {
        assert!(message("(17)281231(10)L1").contains("no GTIN"));
        assert!(message("(01)09501101530004(21)A").contains("(01)"));
        assert!(message("(01)0950110153000(21)A").contains("14 digits"));
        assert!(message("(01)09501101530003(17)281331(21)A").contains("(17)"));
        assert!(message("(01)09501101530003(17)2812(21)A").contains("6 digits"));
        assert!(message("0109501101530003172812").contains("6 digits"));
        assert!(message("(01)09501101530003(01)09501101530003(21)A").contains("twice"));
    }

    #[test]
    fn hostile_input_gets_a_400_never_a_panic() {
        let long_lot = format!("(01)09501101530003(10){}", "L".repeat(21));
        assert!(message(&long_lot).contains("longer than 20"));
        // A missing separator: the lot swallows the serial and is too long.
        assert!(message("010950110153000310VAX-2026-A-LONGER21A0002").contains("separator"));
        assert!(message("(01)09501101530003(21)A B").contains("contains a space"));
        assert!(message("(01)09501101530003(21)Aé").contains("cannot carry"));
        assert!(message("(01)09501101530003(21)A/B").contains("'/'"));
        assert!(message("(01)09501101530003(21)").contains("empty"));
        assert!(message("").contains("empty"));
        assert!(message("\u{1d}\u{1d}").contains("application identifier"));
        assert!(message("]").contains("symbology"));
        assert!(message("]é").contains("symbology"));
        assert!(message(&"(".repeat(600)).contains("512"));
        assert!(message("hello").contains("character 1"));
        assert!(message("(01").contains("not a GS1 element string"));
        assert!(message("x(01)09501101530003").contains("character 1"));
        for text in [
            "((((",
            "(01)(",
            "()",
            "(0",
            "01",
            "0",
            "17",
            "\u{1d}01é",
            "]d2",
            "]d2(",
            "0109501101530003\u{1d}\u{1d}",
        ] {
            let _ = parse_scan(text);
        }
    }

    #[test]
    fn any_short_string_is_answered_without_panicking() {
        // Every string of up to 3 characters from an alphabet of the
        // characters that matter to the parser.
        let alphabet = [
            '(', ')', '0', '1', '7', ']', 'd', '2', '\u{1d}', '/', 'é', ' ',
        ];
        let mut texts = vec![String::new()];
        for _ in 0..3 {
            let mut longer = Vec::new();
            for t in &texts {
                for c in alphabet {
                    longer.push(format!("{t}{c}"));
                }
            }
            texts.extend(longer);
        }
        for t in &texts {
            let _ = parse_scan(t);
            let _ = parse_scan(&format!("(01)09501101530003{t}"));
            let _ = parse_scan(&format!("0109501101530003{t}"));
        }
    }
}
