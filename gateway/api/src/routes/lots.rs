//! Partner reads: lot provenance, EPCIS export, shipment readings and the
//! blood board. Each authenticates the caller, checks visibility and writes
//! an audit entry before answering.
use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{Shipment, ThermalRecord};
use serde_json::json;

use super::{json_answer, now_s, partner, respond, Answer, AppState, Request};
use crate::access::{self, may_read_lot, may_read_shipment};
use crate::error::ApiError;
use crate::identifiers::{check_code, normalize_gtin};
use crate::index::ReadingsQuery;
use crate::provenance::{load_lot, provenance as build_provenance, LotRecords};
use crate::readings::{check_chain, downsample, to_csv};
use crate::records::load;

async fn visible_lot(
    state: &AppState,
    request: &Request,
    gtin: &str,
    lot: &str,
) -> Result<LotRecords, ApiError> {
    let gtin = normalize_gtin(gtin)?;
    let lot = percent_encoding::percent_decode_str(lot)
        .decode_utf8_lossy()
        .into_owned();
    check_code("lot", &lot)?;
    let caller = partner(state, request).await?;
    let records = load_lot(state.index.as_ref(), &gtin, &lot)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "lot {lot} of GTIN {gtin} is not on the ledger (as indexed)"
            ))
        })?;
    if !may_read_lot(&caller, &records) {
        return Err(ApiError::forbidden(format!(
            "organisation {} is neither the maker, a holder nor a counterparty of lot {lot}",
            caller.org_id
        )));
    }
    access::audit(
        state.index.as_ref(),
        &caller,
        request.method.as_str(),
        &request.path,
        &format!("lot {gtin}/{lot}"),
        now_s(),
    )
    .await?;
    Ok(records)
}

pub async fn provenance(state: &AppState, request: &Request, gtin: &str, lot: &str) -> Answer {
    let records = visible_lot(state, request, gtin, lot).await?;
    json_answer(
        200,
        &build_provenance(state.index.as_ref(), &records).await?,
    )
}

pub async fn epcis(state: &AppState, request: &Request, gtin: &str, lot: &str) -> Answer {
    let records = visible_lot(state, request, gtin, lot).await?;
    let document = crate::epcis::lot_document(state.index.as_ref(), &records, now_s()).await?;
    let body = serde_json::to_vec(&document).map_err(|e| ApiError {
        status: 503,
        code: "encode",
        message: e.to_string(),
    })?;
    Ok(respond(200, "application/ld+json", body))
}

/// Largest page of readings as JSON and as CSV, and most chart points.
const MAX_JSON_PAGE: u64 = 5_000;
const MAX_CSV_PAGE: u64 = 200_000;
const MAX_POINTS: u64 = 2_000;

pub async fn readings(state: &AppState, request: &Request, shipment_id: &str) -> Answer {
    let shipment_id = percent_encoding::percent_decode_str(shipment_id)
        .decode_utf8_lossy()
        .into_owned();
    let plain = !shipment_id.is_empty()
        && shipment_id.len() <= 64
        && shipment_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/');
    if !plain {
        return Err(ApiError::bad_request(
            "bad_identifier",
            "shipment id must be 1 to 64 printable characters without '/'".into(),
        ));
    }
    let csv = match request.query.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!(
                    "format={:?} must be json or csv",
                    crate::identifiers::shorten(other)
                ),
            ))
        }
    };
    let from_s = request.number("from", 0, 0..=i64::MAX as u64)?;
    let to_s = request.number("to", i64::MAX as u64, 0..=i64::MAX as u64)?;
    if from_s > to_s {
        return Err(ApiError::bad_request(
            "bad_parameter",
            format!("from={from_s} is after to={to_s}"),
        ));
    }
    let limit = request.number(
        "limit",
        if csv { MAX_CSV_PAGE } else { 500 },
        1..=if csv { MAX_CSV_PAGE } else { MAX_JSON_PAGE },
    )?;
    let points = request
        .query
        .get("points")
        .map(|_| request.number("points", 200, 1..=MAX_POINTS))
        .transpose()?;
    let after = request
        .query
        .get("after")
        .map(|c| parse_cursor(c))
        .transpose()?;
    let caller = partner(state, request).await?;
    let index = state.index.as_ref();
    let shipment = load::<Shipment>(index, RecordKind::Shipment, &shipment_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "shipment {shipment_id} is not on the ledger (as indexed)"
            ))
        })?;
    if !may_read_shipment(&caller, &shipment.record) {
        return Err(ApiError::forbidden(format!(
            "organisation {} is not a party to shipment {shipment_id}",
            caller.org_id
        )));
    }
    access::audit(
        index,
        &caller,
        request.method.as_str(),
        &request.path,
        &format!("shipment {shipment_id} readings"),
        now_s(),
    )
    .await?;
    let limit_u32 = u32::try_from(limit).unwrap_or(u32::MAX);
    // Chart mode reads the whole window (bounded) and summarises it.
    let fetch = if points.is_some() {
        u32::try_from(MAX_CSV_PAGE).unwrap_or(u32::MAX)
    } else {
        limit_u32
    };
    let rows = index
        .readings(ReadingsQuery {
            shipment_id: shipment_id.clone(),
            from_s,
            to_s,
            after,
            limit: fetch,
        })
        .await?;
    if csv {
        let mut response = respond(200, "text/csv; charset=utf-8", to_csv(&rows));
        if let Ok(value) = format!(
            "attachment; filename=\"readings-{}.csv\"",
            shipment_id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        )
        .parse()
        {
            response.headers_mut().insert("content-disposition", value);
        }
        return Ok(response);
    }
    let thermal = load::<ThermalRecord>(index, RecordKind::ShipmentThermal, &shipment_id).await?;
    let on_chain_head = thermal
        .as_ref()
        .map(|t| t.record.get_readings_chain_head().to_string())
        .unwrap_or_default();
    let chain = check_chain(&index.readings_batches(&shipment_id).await?, &on_chain_head);
    let profile = shipment
        .record
        .profile
        .as_ref()
        .map(crate::provenance::profile_view);
    let as_of_block = index.head().await?;
    let mut evidence = vec![shipment.evidence.clone()];
    evidence.extend(thermal.as_ref().map(|t| t.evidence.clone()));
    let thermal_view = thermal
        .as_ref()
        .map(|t| crate::provenance::thermal_summary(&t.record));
    if let Some(points) = points {
        let (lo, hi) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => (from_s.max(first.time_s), to_s.min(last.time_s)),
            _ => (from_s, from_s),
        };
        let buckets = downsample(&rows, lo, hi, u32::try_from(points).unwrap_or(200));
        return json_answer(
            200,
            &json!({
                "shipment_id": shipment_id, "as_of_block": as_of_block, "profile": profile, "thermal": thermal_view,
                "chain": chain, "buckets": buckets, "truncated": rows.len() as u64 >= MAX_CSV_PAGE, "evidence": evidence,
            }),
        );
    }
    let next = (rows.len() as u64 == limit)
        .then(|| {
            rows.last()
                .map(|r| format!("{}:{}:{}", r.time_s, r.sequence, r.device_id))
        })
        .flatten();
    json_answer(
        200,
        &json!({
            "shipment_id": shipment_id, "as_of_block": as_of_block, "profile": profile, "thermal": thermal_view,
            "chain": chain, "readings": rows, "next_cursor": next, "evidence": evidence,
        }),
    )
}

/// `time:sequence:device` → the (time, device, sequence) to resume after.
fn parse_cursor(cursor: &str) -> Result<(u64, String, u64), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_cursor",
            "after= must be a next_cursor value from a previous page".into(),
        )
    };
    let mut parts = cursor.splitn(3, ':');
    let time = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let sequence = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let device = parts.next().filter(|d| d.len() <= 64).ok_or_else(bad)?;
    Ok((time, device.to_string(), sequence))
}

pub async fn blood_requests(state: &AppState, request: &Request) -> Answer {
    let caller = partner(state, request).await?;
    access::audit(
        state.index.as_ref(),
        &caller,
        "GET",
        &request.path,
        "blood requests",
        now_s(),
    )
    .await?;
    let requests = crate::blood::open_requests(state.index.as_ref()).await?;
    json_answer(
        200,
        &json!({"as_of_block": state.index.head().await?, "requests": requests}),
    )
}

pub async fn blood_units(state: &AppState, request: &Request) -> Answer {
    let filter = crate::blood::UnitFilter::from_query(&request.query)?;
    let caller = partner(state, request).await?;
    access::audit(
        state.index.as_ref(),
        &caller,
        "GET",
        &request.path,
        "blood units",
        now_s(),
    )
    .await?;
    let units = crate::blood::available_units(
        state.index.as_ref(),
        &filter,
        crate::verdict::date_of(now_s()),
    )
    .await?;
    json_answer(
        200,
        &json!({"as_of_block": state.index.head().await?, "units": units}),
    )
}
