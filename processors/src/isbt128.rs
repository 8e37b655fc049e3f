//! ISBT 128 labels on blood units: what a bar-code scanner reads from a bag
//! (ICCBBA ST-001 data structures), checked and turned into what the ledger
//! registers. Pure functions over strings; no state, no I/O, no clock.
//!
//! Accepted scans (one bar code each; several may be given, in any order,
//! separated by spaces or run together as a scanner sends them):
//!
//! | data identifier | data structure | example | what it gives |
//! |---|---|---|---|
//! | `=` + `A–N P–Z 1–9` | 001 donation identification number | `=A99992612345600` | the 13-character DIN and its two flag characters |
//! | `=<` | 003 product code | `=<E0398V00` | the component, via [`product_component`] |
//! | `=%` | 002 blood groups \[ABO and RhD\] | `=%5100` | ABO group and RhD |
//! | `&>` | 005 expiration date and time | `&>0271232359` | the expiry day |
//! | `=>` | 004 expiration date | `=>027123` | the expiry day |
//!
//! A typed DIN may also be given as printed: the 13 characters, optionally the
//! two flag characters, optionally the boxed keyboard-entry check character
//! (`A9999 26 123456 00 T` or `A999926123456T`); spaces are ignored there.
//!
//! Decisions where the standard leaves a choice to the user:
//! - The **check character** is ISO/IEC 7064 MOD 37-2 over the 13 DIN
//!   characters (values 0–9, A–Z = 10–35, `*` = 36). When it is given (typed,
//!   or as type 3 flags 60–96 = 60 + its value) it must match; a plain 13-character
//!   DIN carries none and is accepted as before.
//! - **Blood groups**: only the eight ABO/RhD codes with intended use "not
//!   specified" (`9500` O RhD neg, `5100` O pos, `0600` A neg, `6200` A pos,
//!   `1700` B neg, `7300` B pos, `2800` AB neg, `8400` AB pos; third character
//!   any Rh/Kell phenotype code, fourth `0`). Directed, autologous and
//!   emergency-use-only collections, groups without RhD and special messages
//!   (`Mq` quarantine, `Md` discard, …) are refused: the board offers a unit to
//!   any compatible patient.
//! - **Product codes**: `E` codes of the table in [`PRODUCTS`]; an unknown code
//!   is refused with a message saying to give the component by name. Collection
//!   types for transfusion to any patient only (`V`, `P`, `0`, `C`, `7`).
//! - **Expiry**: the ledger keeps a day. A label that expires at 23:59 on day D
//!   gives D; one that expires earlier on D gives D − 1, so no board shows a
//!   unit as usable after the time printed on it.

use chrono::NaiveDate;

use crate::identifiers::yyyymmdd;
use crate::messages::coldchain::{AboGroup, BloodComponent, RhD};
use BloodComponent::{
    CRYOPRECIPITATE as CRYO, FRESH_FROZEN_PLASMA as FFP, PLATELETS as PLT, RED_CELLS as RBC,
    WHOLE_BLOOD as WB,
};

/// Why a scan was refused; each message names the value and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Isbt128Error {
    #[error("donation number {0:?} is not an ISBT 128 DIN: 13 characters (facility letter A-N/P-Z or digit 1-9, 4 digits, year 2 digits, sequence 6 digits), optionally 2 flag characters and the check character, or a scanned =… bar code")]
    DonationNumber(String),
    #[error("donation number {din} has check character {found:?}, but ISO 7064 MOD 37-2 gives {expected:?}; re-scan the bar code or re-type the number")]
    CheckCharacter {
        din: String,
        found: char,
        expected: char,
    },
    #[error("product code {0:?} is not an ISBT 128 product code: =< then E and 4 characters, the collection type and the 2 division characters (e.g. =<E0398V00)")]
    ProductCodeFormat(String),
    #[error("product code {0} is not in coldchain's ISBT 128 table (red cells, whole blood, platelets, plasma, cryoprecipitate); give the component by name (--component / component=) instead")]
    UnknownProduct(String),
    #[error("product code {code} has collection type {kind:?} ({meaning}); only units for transfusion to any patient (V, P, 0, C, 7) go on the emergency board")]
    CollectionType {
        code: String,
        kind: char,
        meaning: &'static str,
    },
    #[error("blood group {0:?} is not an ISBT 128 blood group code: =% then 4 characters (e.g. =%5100 for O RhD positive)")]
    BloodGroupFormat(String),
    #[error("blood group code {code} means {meaning}; only the codes with intended use not specified (9500 O-, 5100 O+, 0600 A-, 6200 A+, 1700 B-, 7300 B+, 2800 AB-, 8400 AB+) can be registered")]
    BloodGroupRefused { code: String, meaning: String },
    #[error("expiry {0:?} is not an ISBT 128 expiration: &> then cyyjjjhhmm (e.g. &>0271232359) or => then cyyjjj")]
    ExpiryFormat(String),
    #[error("expiry {scan:?} names no calendar day or time: {why}")]
    ExpiryValue { scan: String, why: &'static str },
    #[error(
        "scan {0:?} starts with no ISBT 128 data identifier this tool reads (=A…, =<, =%, &>, =>)"
    )]
    UnknownScan(String),
    #[error("the scans hold two {0}; scan one bag at a time")]
    Repeated(&'static str),
}

/// At most 40 characters of untrusted input, for messages.
fn shown(value: &str) -> String {
    value.chars().take(40).collect()
}

/// The ISO/IEC 7064 character value used by ISBT 128 (0-9, A-Z, `*`).
fn char_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'*' => Some(36),
        _ => None,
    }
}

const CHECK_CHARACTERS: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// The ISO/IEC 7064 MOD 37-2 check value (0-36) of `data`; `None` when a
/// character has no value.
///
/// Pure system, radix 2: `p = ((p + value) · 2) mod 37` over the characters,
/// then `(38 − p) mod 37`, i.e. the value `c` that makes
/// `Σ valueᵢ · 2^(n−i+1) + c ≡ 1 (mod 37)`.
pub fn mod37_2(data: &[u8]) -> Option<u32> {
    let mut p = 0;
    for &c in data {
        p = ((p + char_value(c)?) * 2) % 37;
    }
    Some((38 - p) % 37)
}

/// The keyboard-entry check character of a 13-character DIN.
fn check_character(din: &str) -> char {
    let value = mod37_2(din.as_bytes()).unwrap_or(0);
    char::from(CHECK_CHARACTERS[value as usize])
}

fn is_din(din: &[u8]) -> bool {
    din.len() == 13
        && matches!(din[0], b'A'..=b'N' | b'P'..=b'Z' | b'1'..=b'9')
        && din[1..].iter().all(u8::is_ascii_digit)
}

/// A donation identification number as scanned or typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DonationNumber {
    /// The 13 characters the ledger keys the unit by (`αppppyynnnnnn`).
    pub din: String,
    /// The two flag characters, when given (`00` = not used).
    pub flags: Option<String>,
}

impl DonationNumber {
    /// The ISO 7064 MOD 37-2 check character printed boxed after the flags.
    pub fn check_character(&self) -> char {
        check_character(&self.din)
    }

    /// The eye-readable form printed under the bar code: facility, year,
    /// sequence, the flags (printed turned on the label) and the boxed
    /// check character, e.g. `A9999 26 123456 00 [T]`.
    pub fn label_text(&self) -> String {
        let d = &self.din;
        let flags = self
            .flags
            .as_deref()
            .map(|f| format!("{f} "))
            .unwrap_or_default();
        format!(
            "{} {} {} {flags}[{}]",
            &d[..5],
            &d[5..7],
            &d[7..],
            self.check_character()
        )
    }
}

/// The check character of a 13-character donation id (`None` unless it is
/// 13 of `A-Z 0-9`).
pub fn din_check_character(din: &str) -> Option<char> {
    let bytes = din.as_bytes();
    let ledger_id = bytes.len() == 13
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    ledger_id.then(|| check_character(din))
}

/// The eye-readable label text of a 13-character donation id without flags
/// (`A9999 26 123456 [T]`); `None` unless it is 13 of `A-Z 0-9` (every id the
/// ledger holds is, including those registered before scans were read).
pub fn din_label_text(din: &str) -> Option<String> {
    din_check_character(din).map(|_| {
        DonationNumber {
            din: din.to_string(),
            flags: None,
        }
        .label_text()
    })
}

fn check_given(din: &str, found: u8) -> Result<(), Isbt128Error> {
    let expected = check_character(din);
    if char::from(found) == expected {
        Ok(())
    } else {
        Err(Isbt128Error::CheckCharacter {
            din: din.to_string(),
            found: char::from(found),
            expected,
        })
    }
}

/// Type 3 flags (60-96) carry the check value plus 60; they must match.
fn check_flags(din: &str, flags: &str) -> Result<(), Isbt128Error> {
    let bytes = flags.as_bytes();
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return Err(Isbt128Error::DonationNumber(format!("{din}{flags}")));
    }
    if let Ok(number @ 60..=96) = flags.parse::<u32>() {
        let value = number - 60;
        let found = CHECK_CHARACTERS[value as usize];
        check_given(din, found)?;
    }
    Ok(())
}

/// Parses a DIN as a scanner reads it (`=` + 13 + 2 flags) or as a person
/// types it from the label (13 characters, optional flags, optional check
/// character; spaces ignored). A plain 13-character DIN, the form used
/// before ISBT 128 scans were read, is accepted unchanged.
pub fn parse_donation_number(text: &str) -> Result<DonationNumber, Isbt128Error> {
    let bad = || Isbt128Error::DonationNumber(shown(text));
    if let Some(rest) = text.strip_prefix('=') {
        let bytes = rest.as_bytes();
        if bytes.len() != 15 || !is_din(&bytes[..13]) {
            return Err(bad());
        }
        let (din, flags) = rest.split_at(13);
        check_flags(din, flags)?;
        return Ok(DonationNumber {
            din: din.to_string(),
            flags: Some(flags.to_string()),
        });
    }
    if text.len() > 40 {
        return Err(bad());
    }
    let typed: String = text.chars().filter(|c| *c != ' ').collect();
    let bytes = typed.as_bytes();
    if !typed.is_ascii() || bytes.len() < 13 || !is_din(&bytes[..13]) {
        return Err(bad());
    }
    let din = &typed[..13];
    let number = |flags: Option<&str>| DonationNumber {
        din: din.to_string(),
        flags: flags.map(str::to_string),
    };
    match bytes.len() {
        13 => Ok(number(None)),
        14 => {
            check_given(din, bytes[13])?;
            Ok(number(None))
        }
        15 => {
            check_flags(din, &typed[13..])?;
            Ok(number(Some(&typed[13..])))
        }
        16 => {
            check_flags(din, &typed[13..15])?;
            check_given(din, bytes[15])?;
            Ok(number(Some(&typed[13..15])))
        }
        _ => Err(bad()),
    }
}

/// One row of the product table: ISBT 128 product description code, the
/// component it is on the ledger, and its ICCBBA description.
pub struct Product {
    pub code: &'static str,
    pub component: BloodComponent,
    pub description: &'static str,
}

const fn product(
    code: &'static str,
    component: BloodComponent,
    description: &'static str,
) -> Product {
    Product {
        code,
        component,
        description,
    }
}

/// The product description codes coldchain maps, sorted by code. The full
/// table is ICCBBA's licensed database; these are common codes as published
/// (E0398, E4377: the HL7 FHIR R5 ISBT 128 value set; E7003: an HL7 FHIR
/// transfusion example; the others: public supplier lists). A bank using
/// other codes adds rows here or registers with the component by name.
pub const PRODUCTS: &[Product] = &[
    product("E0009", WB, "WHOLE BLOOD|CPD/450mL/refg"),
    product("E0023", WB, "WHOLE BLOOD|CPD/500mL/refg"),
    product("E0033", WB, "WHOLE BLOOD|CPD/500mL/refg|ResLeu:<5E6"),
    product("E0053", WB, "WHOLE BLOOD|CPDA-1/450mL/refg"),
    product("E0150", RBC, "RED BLOOD CELLS|CPD/450mL/refg"),
    product("E0181", RBC, "RED BLOOD CELLS|CPD/500mL/refg|ResLeu:<5E6"),
    product("E0195", RBC, "RED BLOOD CELLS|CPDA-1/450mL/refg"),
    product(
        "E0336",
        RBC,
        "RED BLOOD CELLS|CPD>AS1/500mL/refg|ResLeu:<5E6",
    ),
    product(
        "E0382",
        RBC,
        "RED BLOOD CELLS|CP2D>AS3/500mL/refg|ResLeu:<5E6",
    ),
    product("E0385", RBC, "RED BLOOD CELLS|CPD>AS5/450mL/refg"),
    product(
        "E0398",
        RBC,
        "RED BLOOD CELLS|CPD>AS5/450mL/refg|Irr|ResLeu",
    ),
    product("E0701", FFP, "FRESH FROZEN PLASMA|CPD/XX/<=-18C"),
    product("E0707", FFP, "FRESH FROZEN PLASMA|CPDA-1/XX/<=-18C"),
    product(
        "E0869",
        FFP,
        "Apheresis FRESH FROZEN PLASMA|ACD-A/XX/<=-18C",
    ),
    product("E2807", PLT, "PLATELETS|CPD/450mL/20-24C"),
    product("E2940", PLT, "Apheresis PLATELETS|ACD-A/XX/20-24C"),
    product(
        "E3077",
        PLT,
        "Apheresis PLATELETS|ACD-A/XX/20-24C|ResLeu:<5E6",
    ),
    product(
        "E4377",
        RBC,
        "Apheresis RED BLOOD CELLS|ACD-A/XX/refg|Irradiated|1st container",
    ),
    product("E5165", CRYO, "CRYOPRECIPITATE|None/XX/<=-18C"),
    product(
        "E7003",
        PLT,
        "Apheresis PLATELETS|ACD-A>PAS-C/XX/20-24C|ResLeu:<5E6|2nd container",
    ),
];

/// The table row of product description code `code` (e.g. `E0398`).
pub fn product_component(code: &str) -> Option<&'static Product> {
    PRODUCTS
        .binary_search_by(|p| p.code.cmp(code))
        .ok()
        .map(|i| &PRODUCTS[i])
}

/// A product code as scanned (`=<E0398V00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductCode {
    /// The product description code (`E0398`).
    pub code: String,
    /// Collection type (`V` volunteer allogeneic, …).
    pub collection: char,
    /// Division (`00` = not divided).
    pub division: String,
    pub component: BloodComponent,
    pub description: &'static str,
}

fn collection_meaning(kind: u8) -> Option<(&'static str, bool)> {
    // (meaning, may go to any compatible patient)
    Some(match kind {
        b'0' => ("not specified", true),
        b'V' => ("volunteer allogeneic", true),
        b'P' => ("paid allogeneic", true),
        b'C' => ("replacement donor", true),
        b'7' => ("for allogeneic use", true),
        b'R' | b'r' => ("research, not for human application", false),
        b'S' | b's' => ("source material", false),
        b'T' => ("therapeutic collection", false),
        b'A' | b'1' | b'X' | b'8' => ("autologous", false),
        b'D' | b'd' | b'2' | b'L' | b'3' | b'B' | b'H' | b'J' => ("directed donation", false),
        b'4' | b'5' | b'6' | b'F' => ("designated, dedicated or family reserved", false),
        b'E' => ("medical exception for one recipient", false),
        b'Q' => ("see the special testing bar code", false),
        b'G' => ("for emergency use only", false),
        _ => return None,
    })
}

/// Parses a product code scan, `=<` + `E` + 4 characters + collection type
/// + 2 division characters; the data identifier may be left off.
pub fn parse_product_code(text: &str) -> Result<ProductCode, Isbt128Error> {
    let body = text.strip_prefix("=<").unwrap_or(text);
    let bad = || Isbt128Error::ProductCodeFormat(shown(text));
    let bytes = body.as_bytes();
    let shape = bytes.len() == 8
        && bytes[0].is_ascii_uppercase()
        && bytes[1..5]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && (bytes[6].is_ascii_digit() || bytes[6].is_ascii_uppercase())
        && (bytes[7].is_ascii_digit() || bytes[7].is_ascii_lowercase());
    if !shape {
        return Err(bad());
    }
    let code = &body[..5];
    let (meaning, general) = collection_meaning(bytes[5]).ok_or_else(bad)?;
    let product =
        product_component(code).ok_or_else(|| Isbt128Error::UnknownProduct(code.to_string()))?;
    if !general {
        return Err(Isbt128Error::CollectionType {
            code: code.to_string(),
            kind: char::from(bytes[5]),
            meaning,
        });
    }
    Ok(ProductCode {
        code: code.to_string(),
        collection: char::from(bytes[5]),
        division: body[6..].to_string(),
        component: product.component,
        description: product.description,
    })
}

/// ABO and RhD from a blood group scan (`=%5100`, or the 4 characters alone).
pub fn parse_blood_group(text: &str) -> Result<(AboGroup, RhD), Isbt128Error> {
    let body = text.strip_prefix("=%").unwrap_or(text);
    let bytes = body.as_bytes();
    let shape = bytes.len() == 4
        && bytes[..2].iter().all(u8::is_ascii_alphanumeric)
        && (bytes[2].is_ascii_digit() || bytes[2].is_ascii_uppercase());
    if !shape {
        return Err(Isbt128Error::BloodGroupFormat(shown(text)));
    }
    let refused = |meaning: String| Isbt128Error::BloodGroupRefused {
        code: body.to_string(),
        meaning,
    };
    if bytes[3] != b'0' {
        return Err(Isbt128Error::BloodGroupFormat(shown(text)));
    }
    let gg = &body[..2];
    let Ok(number) = gg.parse::<u32>() else {
        let meaning = match gg {
            "Ma" => "autologous collection",
            "Mb" => "biohazardous",
            "Md" => "discard (to be destroyed)",
            "Mf" => "for fractionation use only",
            "Mq" => "quarantine / hold for further testing",
            "Mr" => "for research use only",
            "Mx" => "not for transfusion based on test results",
            _ => "a subgroup, Bombay, pooled or tissue code, not a plain ABO/RhD group",
        };
        return Err(refused(meaning.into()));
    };
    // Each ABO/RhD group owns 8 consecutive codes, one per intended use;
    // the fifth (index 4) is "intended use not specified".
    let groups = [
        (91, AboGroup::O, RhD::NEGATIVE),
        (47, AboGroup::O, RhD::POSITIVE),
        (2, AboGroup::A, RhD::NEGATIVE),
        (58, AboGroup::A, RhD::POSITIVE),
        (13, AboGroup::B, RhD::NEGATIVE),
        (69, AboGroup::B, RhD::POSITIVE),
        (24, AboGroup::AB, RhD::NEGATIVE),
        (80, AboGroup::AB, RhD::POSITIVE),
    ];
    const USES: [&str; 8] = [
        "directed (dedicated/designated) collection use only",
        "for emergency use only",
        "directed collection, biohazardous",
        "directed collection, eligible for crossover",
        "intended use not specified",
        "autologous collection, eligible for crossover",
        "for autologous use only",
        "for autologous use only, biohazardous",
    ];
    for (first, abo, rh) in groups {
        if (first..first + 8).contains(&number) {
            let use_index = (number - first) as usize;
            if use_index == 4 {
                return Ok((abo, rh));
            }
            let group = crate::blood::BloodType::new(abo, rh);
            return Err(refused(format!("{group}, {}", USES[use_index])));
        }
    }
    let meaning = match number {
        0 => "no ABO or RhD information",
        55 | 66 | 77 | 88 => "an ABO group without RhD",
        _ => "no ABO/RhD group",
    };
    Err(refused(meaning.into()))
}

/// The expiry day of an expiration scan: `&>cyyjjjhhmm` (date and time) or
/// `=>cyyjjj` (date, expiring at 23:59), as `YYYYMMDD` (see the module doc
/// for why a time before 23:59 gives the day before).
pub fn parse_expiry(text: &str) -> Result<u32, Isbt128Error> {
    let (body, with_time) = if let Some(body) = text.strip_prefix("&>") {
        (body, true)
    } else if let Some(body) = text.strip_prefix("=>") {
        (body, false)
    } else {
        return Err(Isbt128Error::ExpiryFormat(shown(text)));
    };
    let digits = if with_time { 10 } else { 6 };
    if body.len() != digits || !body.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Isbt128Error::ExpiryFormat(shown(text)));
    }
    let number = |range: std::ops::Range<usize>| body[range].parse::<u32>().unwrap_or(0);
    let value = |why| Isbt128Error::ExpiryValue {
        scan: shown(text),
        why,
    };
    // c is the century after 2000 (0 = 2000-2099), yy the year in it.
    let year = 2000 + 100 * number(0..1) + number(1..3);
    let ordinal = number(3..6);
    let day = NaiveDate::from_yo_opt(year as i32, ordinal)
        .ok_or_else(|| value("day of the year jjj must be 001-365 (366 in a leap year)"))?;
    if !with_time {
        return Ok(yyyymmdd(day));
    }
    let (hour, minute) = (number(6..8), number(8..10));
    if hour > 23 || minute > 59 {
        return Err(value("time hhmm must be 0000-2359"));
    }
    if (hour, minute) == (23, 59) {
        return Ok(yyyymmdd(day));
    }
    day.pred_opt()
        .map(yyyymmdd)
        .ok_or_else(|| value("the day before the expiry is not a calendar day"))
}

/// Everything read from one bag's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitLabel {
    pub donation: Option<DonationNumber>,
    pub product: Option<ProductCode>,
    pub group: Option<(AboGroup, RhD)>,
    /// Expiry day, `YYYYMMDD`.
    pub expiry: Option<u32>,
}

/// Splits scanner output into data structures: whitespace separates scans,
/// and scans run together are cut at their fixed lengths.
fn next_structure(text: &str) -> Result<(&str, &str), Isbt128Error> {
    let len = if text.starts_with("=<") {
        10
    } else if text.starts_with("=%") {
        6
    } else if text.starts_with("&>") {
        12
    } else if text.starts_with("=>") {
        8
    } else if text.starts_with('=')
        && text
            .as_bytes()
            .get(1)
            .is_some_and(|b| matches!(b, b'A'..=b'N' | b'P'..=b'Z' | b'1'..=b'9'))
    {
        16
    } else {
        return Err(Isbt128Error::UnknownScan(shown(text)));
    };
    let cut = (0..=len.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    Ok(text.split_at(cut))
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), Isbt128Error> {
    if slot.is_some() {
        return Err(Isbt128Error::Repeated(what));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads the bar codes of one bag (see the module doc for the forms).
pub fn parse_scans(scans: &str) -> Result<UnitLabel, Isbt128Error> {
    let mut label = UnitLabel::default();
    for word in scans.split_whitespace() {
        let mut rest = word;
        while !rest.is_empty() {
            let (structure, after) = next_structure(rest)?;
            rest = after;
            if structure.starts_with("=<") {
                set_once(
                    &mut label.product,
                    parse_product_code(structure)?,
                    "product codes",
                )?;
            } else if structure.starts_with("=%") {
                set_once(
                    &mut label.group,
                    parse_blood_group(structure)?,
                    "blood groups",
                )?;
            } else if structure.starts_with("&>") || structure.starts_with("=>") {
                set_once(&mut label.expiry, parse_expiry(structure)?, "expiry dates")?;
            } else {
                set_once(
                    &mut label.donation,
                    parse_donation_number(structure)?,
                    "donation numbers",
                )?;
            }
        }
    }
    Ok(label)
}

#[cfg(test)]
mod tests;
