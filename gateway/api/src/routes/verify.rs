//! Public verification: by query (`/api/v1/verify?gtin=&lot=&serial=&exp=`),
//! by what a barcode scanner typed (`/api/v1/verify?scan=`, see [`crate::scan`])
//! or by GS1 Digital Link path (`/01/{gtin}/10/{lot}/21/{serial}?17=YYMMDD`).
//! Both answer 503 `cannot_verify_now` instead of a verdict while the index
//! is not known to be current (see [`crate::freshness`]).
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{Lot, Pack, ThermalRecord};
use serde_json::json;

use super::health::{assess, refuse_unless_fresh};
use super::{json_answer, now_s, Answer, AppState, Request};
use crate::error::ApiError;
use crate::identifiers::{check_code, expiry_from_yymmdd, normalize_gtin, parse_digital_link};
use crate::records::load;
use crate::scan::parse_scan;
use crate::verdict::{date_of, decide, VerdictInput};

pub async fn by_query(state: &AppState, request: &Request) -> Answer {
    if let Some(text) = request.query.get("scan") {
        return by_scan(state, request, text).await;
    }
    let gtin = request.query.get("gtin").ok_or_else(|| {
        ApiError::bad_request(
            "missing_gtin",
            "gtin is required, with lot and/or serial (or scan= with what the scanner read)".into(),
        )
    })?;
    let gtin = normalize_gtin(gtin)?;
    let lot = request.query.get("lot").cloned();
    let serial = request.query.get("serial").cloned();
    let expiry = request
        .query
        .get("exp")
        .map(|e| expiry_from_yymmdd(e))
        .transpose()?;
    verify(state, gtin, lot, serial, expiry).await
}

/// `?scan=`: the text a barcode scanner typed, in any form [`parse_scan`]
/// reads. It names the pack on its own, so it is not combined with the other
/// parameters (two sources of one fact could disagree silently).
async fn by_scan(state: &AppState, request: &Request, text: &str) -> Answer {
    if let Some(other) = ["gtin", "lot", "serial", "exp"]
        .into_iter()
        .find(|k| request.query.contains_key(*k))
    {
        return Err(ApiError::bad_request(
            "bad_parameter",
            format!("scan= names the pack by itself; leave out {other}="),
        ));
    }
    let scan = parse_scan(text)?;
    verify(state, scan.gtin, scan.lot, scan.serial, scan.expiry).await
}

pub async fn digital_link(state: &AppState, request: &Request, rest: &[&str]) -> Answer {
    let segments: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
    let link = parse_digital_link(&segments)?;
    let expiry = request
        .query
        .get("17")
        .map(|e| expiry_from_yymmdd(e))
        .transpose()?;
    verify(state, link.gtin, link.lot, link.serial, expiry).await
}

async fn verify(
    state: &AppState,
    gtin: String,
    lot: Option<String>,
    serial: Option<String>,
    expiry: Option<u32>,
) -> Answer {
    if let Some(lot) = &lot {
        check_code("lot", lot)?;
    }
    if let Some(serial) = &serial {
        check_code("serial", serial)?;
    }
    if lot.is_none() && serial.is_none() {
        return Err(ApiError::bad_request(
            "missing_lot_or_serial",
            "give a lot, a serial, or both with the GTIN".into(),
        ));
    }
    let index = state.index.as_ref();
    let as_of_block = index.head().await?;
    // A verdict never comes silently from the past: refuse (503) unless the
    // index is current. No node call here; the follower keeps the head fresh.
    let freshness = assess(state, as_of_block.as_ref().map(|b| b.block_num));
    if let Some(refusal) = refuse_unless_fresh(state, &freshness) {
        return refusal;
    }
    let pack = match &serial {
        Some(serial) => load::<Pack>(index, RecordKind::Pack, &goods_key(&gtin, serial)).await?,
        None => None,
    };
    let lot_number = lot
        .clone()
        .or_else(|| pack.as_ref().map(|p| p.record.get_lot().to_string()));
    let lot_record = match &lot_number {
        Some(lot) => load::<Lot>(index, RecordKind::Lot, &goods_key(&gtin, lot)).await?,
        None => None,
    };
    let thermal = match &lot_number {
        Some(lot) if lot_record.is_some() => {
            load::<ThermalRecord>(index, RecordKind::GoodsThermal, &goods_key(&gtin, lot)).await?
        }
        _ => None,
    };
    let verdict = decide(&VerdictInput {
        lot: lot_record.as_ref().map(|l| &l.record),
        pack: pack.as_ref().map(|p| &p.record),
        requested_serial: serial.as_deref(),
        claimed_expiry: expiry,
        lot_thermal: thermal.as_ref().map(|t| &t.record),
        today: date_of(now_s()),
    });
    let mut evidence = Vec::new();
    let mut status_history = Vec::new();
    if let Some(found) = &lot_record {
        evidence.push(found.evidence.clone());
        status_history = index.record_history(&found.evidence.address).await?;
    }
    evidence.extend(pack.as_ref().map(|p| p.evidence.clone()));
    evidence.extend(thermal.as_ref().map(|t| t.evidence.clone()));
    let lot_view = lot_record.as_ref().map(|l| {
        json!({
            "product_name": l.record.get_product_name(),
            "expiry_date": l.record.get_expiry_date(),
            "status": format!("{:?}", l.record.get_status()).to_lowercase(),
            "manufacturer_org_id": l.record.get_manufacturer_org_id(),
        })
    });
    json_answer(
        200,
        &json!({
            "verdict": verdict.verdict,
            "reasons": verdict.reasons,
            "gtin": gtin,
            "lot": lot_number,
            "serial": serial,
            "lot_record": lot_view,
            "expiry_on_pack": expiry,
            "as_of_block": as_of_block,
            "index_lag_blocks": freshness.following.then_some(freshness.lag_blocks).flatten(),
            "evidence": evidence,
            "lot_versions": status_history,
        }),
    )
}
