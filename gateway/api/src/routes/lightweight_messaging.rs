//! Verification requests in the industry's message format: the GS1
//! Lightweight Messaging Standard for Verification of Product Identifiers
//! (release 1.0.2 / 1.1, https://ref.gs1.org/standards/lightweight-verification-messaging/)
//! as the US DSCSA implementation guideline (release 1.3) uses it between
//! pharmacies, wholesalers and verification router services (VRS).
//!
//! The request is an HTTP GET of a GS1 Digital Link URI naming the pack
//! (`{base}/01/{gtin}/10/{lot}/21/{serial}?17={YYMMDD}`, or the Digital Link
//! 1.0 short names `{base}/gtin/{gtin}/lot/{lot}/ser/{serial}?exp={YYMMDD}`)
//! with `linkType=verificationService`, `context`, the requestor's GLN
//! (`reqGLN`) and a correlation UUID (`corrUUID`) in the query string. The
//! answer is JSON: `verificationTimestamp`, `responderGLN`, `data.verified`
//! with `verificationFailureReason` and `additionalInfo` codes, and the
//! `corrUUID` echoed. Our own verdict and reasons travel beside them in a
//! `coldchain` member. Our base is `/vrs`.
//!
//! Parse → decide → answer, as in `verify.rs`: [`parse_request`] and
//! [`answer_for`] are pure; [`serve`] reads the index. Like every verdict,
//! no answer is given while the index is not current (503
//! `cannot_verify_now`), so `verified: true` never comes from the past.
use std::collections::HashMap;

use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{
    Lot, LotStatus, Organization, Pack, ThermalRecord,
};
use serde::Serialize;
use serde_json::{json, Value};
use warp::http::Method;

use super::health::{assess, refuse_unless_fresh};
use super::{json_answer, now_s, Answer, AppState, Request};
use crate::error::ApiError;
use crate::identifiers::{check_code, expiry_from_yymmdd, normalize_gtin, shorten};
use crate::records::load;
use crate::verdict::{date_of, decide, Verdict, VerdictInput, VerdictKind};

/// The `linkType` of a verification request.
pub const LINK_TYPE: &str = "verificationService";

/// The `context` values accepted: a saleable return (the standard's and the
/// guideline's default use) and an exception verification.
pub const CONTEXTS: &[&str] = &["dscsaSaleableReturn", "dscsaExceptionVerification"];

/// A verification request, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationRequest {
    /// 14 digits, check digit verified.
    pub gtin: String,
    pub lot: String,
    pub serial: String,
    /// The printed expiry as YYYYMMDD.
    pub expiry: u32,
    pub context: String,
    /// The requestor's GLN (13 digits, check digit verified).
    pub requestor_gln: String,
    /// The correlation UUID as sent, or None when the requestor sent none.
    pub correlation_id: Option<String>,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::bad_request(code, message)
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            bad(
                "bad_encoding",
                "path segment is not UTF-8 after percent-decoding".into(),
            )
        })
}

/// The shape every verification request path takes, for error messages.
const SHAPE: &str = "/vrs/01/{gtin}/10/{lot}/21/{serial}?17={YYMMDD}&linkType=verificationService&context=dscsaSaleableReturn&reqGLN={GLN}&corrUUID={UUID}";

/// Parses the path segments after `/vrs` and the query string.
pub fn parse_request(
    segments: &[&str],
    query: &HashMap<String, String>,
) -> Result<VerificationRequest, ApiError> {
    let (gtin, lot, serial) = match segments {
        ["01", gtin, "10", lot, "21", serial] | ["gtin", gtin, "lot", lot, "ser", serial] => {
            (*gtin, *lot, *serial)
        }
        _ => {
            return Err(bad(
                "bad_verification_request",
                format!(
                    "a verification request names the pack by GTIN, lot and serial as a GS1 Digital Link: {SHAPE} (the DSCSA product identifier needs all four of GTIN, lot, serial and expiry)"
                ),
            ))
        }
    };
    let gtin = normalize_gtin(&decode(gtin)?)?;
    let lot = decode(lot)?;
    check_code("lot", &lot)?;
    let serial = decode(serial)?;
    check_code("serial", &serial)?;
    let expiry = match (query.get("17"), query.get("exp")) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(
                "bad_expiry",
                format!(
                    "17={:?} and exp={:?} name two expiry dates; send one",
                    shorten(a),
                    shorten(b)
                ),
            ))
        }
        (Some(value), _) | (None, Some(value)) => expiry_from_yymmdd(value)?,
        (None, None) => {
            return Err(bad(
                "missing_expiry",
                "the expiry date printed on the pack is required: add 17=YYMMDD (GS1 AI 17) to the query".into(),
            ))
        }
    };
    if let Some(link_type) = query.get("linkType").filter(|l| *l != LINK_TYPE) {
        return Err(bad(
            "bad_link_type",
            format!(
                "linkType={:?} is not served here; a verification request has linkType={LINK_TYPE}",
                shorten(link_type)
            ),
        ));
    }
    let context = query
        .get("context")
        .map(String::as_str)
        .unwrap_or(CONTEXTS[0]);
    if !CONTEXTS.contains(&context) {
        return Err(bad(
            "bad_context",
            format!(
                "context={:?} is not known; use one of {}",
                shorten(context),
                CONTEXTS.join(", ")
            ),
        ));
    }
    let requestor_gln = query.get("reqGLN").ok_or_else(|| {
        bad(
            "missing_requestor_gln",
            "reqGLN (the requestor's 13-digit GLN) is required".into(),
        )
    })?;
    if requestor_gln.len() > 13 {
        return Err(bad(
            "bad_requestor_gln",
            format!("reqGLN {:?} must be a 13-digit GLN", shorten(requestor_gln)),
        ));
    }
    coldchain_processors::identifiers::check_gln(requestor_gln)
        .map_err(|e| bad("bad_requestor_gln", format!("reqGLN: {e}")))?;
    let correlation_id = query.get("corrUUID").cloned();
    if let Some(id) = &correlation_id {
        if !is_uuid(id) {
            return Err(bad(
                "bad_correlation_id",
                format!(
                    "corrUUID {:?} must be a UUID (8-4-4-4-12 hexadecimal digits), or left out to have one assigned",
                    shorten(id)
                ),
            ));
        }
    }
    Ok(VerificationRequest {
        gtin,
        lot,
        serial,
        expiry,
        context: context.to_string(),
        requestor_gln: requestor_gln.clone(),
        correlation_id,
    })
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hexadecimal digits.
fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fresh random (version 4) UUID for a request that sent no `corrUUID`.
fn new_correlation_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// How the identifiers asked match what the ledger registered for the serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierMatch {
    /// GTIN, serial, lot and expiry are the ledger's.
    Full,
    /// No pack with this serial is registered under this GTIN (as far as the
    /// ledger can tell: the lot asked does not list it and no pack record
    /// names it).
    NoGtinSerial,
    NoLot,
    NoExpiry,
    NoLotExpiry,
}

/// What the standard's answer says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LightweightData {
    pub verified: bool,
    #[serde(
        rename = "verificationFailureReason",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason: Option<&'static str>,
    #[serde(rename = "additionalInfo", skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<&'static str>,
}

fn not_verified(reason: &'static str, info: Option<&'static str>) -> LightweightData {
    LightweightData {
        verified: false,
        failure_reason: Some(reason),
        additional_info: info,
    }
}

/// Maps the identifier match and our verdict to the standard's answer.
/// `verified` is true only for a pack in specification that may be
/// dispensed; every "do not dispense" verdict is `verified: false` (the
/// guideline's `Manufacturer_policy` allows either for a recalled or expired
/// pack; a pharmacy system that reads only `verified` must not resell it).
pub fn answer_for(
    matched: IdentifierMatch,
    verdict: &Verdict,
    lot_status: Option<LotStatus>,
) -> LightweightData {
    use IdentifierMatch::*;
    match matched {
        NoGtinSerial => return not_verified("No_match_GTIN_Serial", None),
        NoLot => return not_verified("No_match_GTIN_Serial_Lot", None),
        NoExpiry => return not_verified("No_match_GTIN_Serial_Expiry", None),
        NoLotExpiry => return not_verified("No_match_GTIN_Serial_Lot_Expiry", None),
        Full => {}
    }
    match verdict.verdict {
        VerdictKind::AuthenticInSpec => LightweightData {
            verified: true,
            failure_reason: None,
            additional_info: None,
        },
        VerdictKind::Recalled => not_verified("Manufacturer_policy", Some("Recalled")),
        VerdictKind::Expired => not_verified("Manufacturer_policy", Some("Expired")),
        // A destroyed lot's packs should not exist any more.
        VerdictKind::Compromised if lot_status == Some(LotStatus::DESTROYED) => {
            not_verified("Not_for_re-distribution", Some("Illegitimate"))
        }
        // Cold chain broken or marked compromised, under investigation, or a
        // serial already dispensed to a patient coming back: suspect product.
        VerdictKind::Compromised | VerdictKind::Quarantined | VerdictKind::AlreadyDispensed => {
            not_verified("Not_for_re-distribution", Some("Suspect"))
        }
        VerdictKind::Unknown => not_verified("No_reason_provided", None),
    }
}

/// `2026-12-05T21:50:07.123Z`: ISO 8601 UTC with milliseconds.
fn timestamp_text(unix_ms: u128) -> String {
    let seconds = u64::try_from(unix_ms / 1000).unwrap_or(u64::MAX);
    let text = crate::epcis::iso_time(seconds);
    format!(
        "{}.{:03}Z",
        text.trim_end_matches('Z'),
        (unix_ms % 1000) as u32
    )
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Whether an `Accept` header admits a JSON answer (absent: yes).
fn accepts_json(request: &Request) -> bool {
    let Some(accept) = request.headers.get("accept") else {
        return true;
    };
    let accept = String::from_utf8_lossy(accept.as_bytes()).to_ascii_lowercase();
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or_default().trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

/// `/vrs/…`: a GET is a verification request; any other method is answered
/// 405 with `Allow: GET`, as the standard's status table says.
pub async fn serve(state: &AppState, request: &Request, rest: &[&str]) -> Answer {
    if request.method != Method::GET && request.method != Method::HEAD {
        let mut response = super::respond(
            405,
            "application/json",
            serde_json::to_vec(&ApiError {
                status: 405,
                code: "method_not_allowed",
                message: format!(
                    "{} is not supported: a GS1 Lightweight Messaging verification request is a GET of {SHAPE}",
                    request.method
                ),
            })
            .unwrap_or_default(),
        );
        if let Ok(value) = "GET, HEAD".parse() {
            response.headers_mut().insert("allow", value);
        }
        return Ok(response);
    }
    if !accepts_json(request) {
        return Err(ApiError {
            status: 406,
            code: "not_acceptable",
            message: "the verification response is application/json; send Accept: application/json (or none)".into(),
        });
    }
    let asked = parse_request(rest, &request.query)?;
    verify(state, asked).await
}

async fn verify(state: &AppState, asked: VerificationRequest) -> Answer {
    let index = state.index.as_ref();
    let as_of_block = index.head().await?;
    let freshness = assess(state, as_of_block.as_ref().map(|b| b.block_num));
    if let Some(refusal) = refuse_unless_fresh(state, &freshness) {
        return refusal;
    }
    let gtin = &asked.gtin;
    let pack = load::<Pack>(index, RecordKind::Pack, &goods_key(gtin, &asked.serial)).await?;
    let lot = load::<Lot>(index, RecordKind::Lot, &goods_key(gtin, &asked.lot)).await?;
    // The lot the serial belongs to on the ledger: its pack record's, or the
    // lot asked when that lot lists it.
    let serial_lot = match (&pack, &lot) {
        (Some(p), _) => Some(p.record.get_lot().to_string()),
        (None, Some(l)) if l.record.get_serials().contains(&asked.serial) => {
            Some(asked.lot.clone())
        }
        _ => None,
    };
    let registered = match &serial_lot {
        Some(name) if *name == asked.lot => lot.clone(),
        Some(name) => load::<Lot>(index, RecordKind::Lot, &goods_key(gtin, name)).await?,
        None => None,
    };
    let matched = match (&serial_lot, &registered) {
        (Some(name), Some(found)) => {
            let lot_ok = *name == asked.lot;
            let expiry_ok = found.record.get_expiry_date() == asked.expiry;
            match (lot_ok, expiry_ok) {
                (true, true) => IdentifierMatch::Full,
                (true, false) => IdentifierMatch::NoExpiry,
                (false, true) => IdentifierMatch::NoLot,
                (false, false) => IdentifierMatch::NoLotExpiry,
            }
        }
        _ => IdentifierMatch::NoGtinSerial,
    };
    let thermal = match &lot {
        Some(_) => {
            load::<ThermalRecord>(
                index,
                RecordKind::GoodsThermal,
                &goods_key(gtin, &asked.lot),
            )
            .await?
        }
        None => None,
    };
    let verdict = decide(&VerdictInput {
        lot: lot.as_ref().map(|l| &l.record),
        pack: pack.as_ref().map(|p| &p.record),
        requested_serial: Some(&asked.serial),
        claimed_expiry: Some(asked.expiry),
        lot_thermal: thermal.as_ref().map(|t| &t.record),
        today: date_of(now_s()),
    });
    let data = answer_for(
        matched,
        &verdict,
        lot.as_ref().map(|l| l.record.get_status()),
    );
    // The responder is the maker of the serial's lot, as the ledger records
    // it: its first registered site.
    let maker = registered
        .as_ref()
        .map(|l| l.record.get_manufacturer_org_id().to_string());
    let responder_gln = match &maker {
        Some(org) => load::<Organization>(index, RecordKind::Organization, org)
            .await?
            .and_then(|o| o.record.get_site_glns().first().cloned()),
        None => None,
    };
    let mut body = json!({
        "verificationTimestamp": timestamp_text(now_ms()),
        "data": data,
        "corrUUID": asked.correlation_id.clone().unwrap_or_else(new_correlation_id),
        "coldchain": {
            "verdict": verdict.verdict,
            "reasons": verdict.reasons,
            "gtin": asked.gtin,
            "lot": asked.lot,
            "serial": asked.serial,
            "context": asked.context,
            "reqGLN": asked.requestor_gln,
            "as_of_block": as_of_block,
        },
    });
    if let (Some(gln), Some(object)) = (responder_gln, body.as_object_mut()) {
        object.insert("responderGLN".into(), Value::String(gln));
    }
    json_answer(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTIN: &str = "09506000134352";

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn standard_query() -> HashMap<String, String> {
        query(&[
            ("17", "201231"),
            ("linkType", "verificationService"),
            ("context", "dscsaSaleableReturn"),
            ("reqGLN", "0614141000005"),
            ("corrUUID", "21f11c2b-4b0a-4b21-9a7b-5b2bd7e2f8a1"),
        ])
    }

    #[test]
    fn the_standards_request_uri_parses_in_both_digital_link_forms() {
        let asked = parse_request(
            &["01", GTIN, "10", "ABC123", "21", "12345"],
            &standard_query(),
        )
        .unwrap();
        assert_eq!(
            asked,
            VerificationRequest {
                gtin: GTIN.into(),
                lot: "ABC123".into(),
                serial: "12345".into(),
                expiry: 20201231,
                context: "dscsaSaleableReturn".into(),
                requestor_gln: "0614141000005".into(),
                correlation_id: Some("21f11c2b-4b0a-4b21-9a7b-5b2bd7e2f8a1".into()),
            }
        );
        let mut short = standard_query();
        short.remove("17");
        short.insert("exp".into(), "201231".into());
        let again =
            parse_request(&["gtin", GTIN, "lot", "ABC123", "ser", "12345"], &short).unwrap();
        assert_eq!(again, asked);
    }

    #[test]
    fn missing_or_malformed_parts_name_what_is_wrong() {
        let code = |segments: &[&str], q: HashMap<String, String>| {
            parse_request(segments, &q).unwrap_err().code
        };
        let full = ["01", GTIN, "10", "ABC123", "21", "12345"];
        assert_eq!(
            code(&["01", GTIN, "21", "12345"], standard_query()),
            "bad_verification_request"
        );
        assert_eq!(
            code(
                &["01", "09506000134353", "10", "A", "21", "1"],
                standard_query()
            ),
            "bad_gtin"
        );
        let without = |key: &str| {
            let mut q = standard_query();
            q.remove(key);
            q
        };
        assert_eq!(code(&full, without("17")), "missing_expiry");
        assert_eq!(code(&full, without("reqGLN")), "missing_requestor_gln");
        // Optional: linkType, context (saleable return) and corrUUID.
        for key in ["linkType", "context", "corrUUID"] {
            parse_request(&full, &without(key)).unwrap();
        }
        let with = |key: &str, value: &str| {
            let mut q = standard_query();
            q.insert(key.into(), value.into());
            q
        };
        assert_eq!(
            code(&full, with("reqGLN", "0614141000006")),
            "bad_requestor_gln"
        );
        assert_eq!(
            code(&full, with("corrUUID", "not-a-uuid")),
            "bad_correlation_id"
        );
        assert_eq!(code(&full, with("linkType", "pip")), "bad_link_type");
        assert_eq!(code(&full, with("context", "resale")), "bad_context");
        assert_eq!(code(&full, with("17", "201331")), "bad_expiry");
        assert_eq!(code(&full, with("exp", "201230")), "bad_expiry");
    }

    fn verdict(kind: VerdictKind) -> Verdict {
        Verdict {
            verdict: kind,
            reasons: vec![],
        }
    }

    #[test]
    fn every_verdict_maps_to_the_standards_answer() {
        use IdentifierMatch::*;
        use VerdictKind::*;
        let answer = |m, k, s| {
            let d = answer_for(m, &verdict(k), s);
            (d.verified, d.failure_reason, d.additional_info)
        };
        let active = Some(LotStatus::ACTIVE);
        assert_eq!(answer(Full, AuthenticInSpec, active), (true, None, None));
        assert_eq!(
            answer(Full, Recalled, Some(LotStatus::RECALLED)),
            (false, Some("Manufacturer_policy"), Some("Recalled"))
        );
        assert_eq!(
            answer(Full, Expired, active),
            (false, Some("Manufacturer_policy"), Some("Expired"))
        );
        for kind in [Compromised, Quarantined, AlreadyDispensed] {
            assert_eq!(
                answer(Full, kind, active),
                (false, Some("Not_for_re-distribution"), Some("Suspect"))
            );
        }
        assert_eq!(
            answer(Full, Compromised, Some(LotStatus::DESTROYED)),
            (false, Some("Not_for_re-distribution"), Some("Illegitimate"))
        );
        for (m, code) in [
            (NoGtinSerial, "No_match_GTIN_Serial"),
            (NoLot, "No_match_GTIN_Serial_Lot"),
            (NoExpiry, "No_match_GTIN_Serial_Expiry"),
            (NoLotExpiry, "No_match_GTIN_Serial_Lot_Expiry"),
        ] {
            // A mismatch wins over whatever the verdict says.
            assert_eq!(
                answer(m, AuthenticInSpec, active),
                (false, Some(code), None)
            );
        }
    }

    #[test]
    fn assigned_correlation_ids_are_version_4_uuids() {
        let id = new_correlation_id();
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_correlation_id());
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(
            timestamp_text(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(timestamp_text(0), "1970-01-01T00:00:00.000Z");
    }
}
