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
use crate::index::{BucketLayout, BucketQuery, ReadingsQuery};
use crate::provenance::{load_lot, provenance as build_provenance, LotRecords};
use crate::readings::{check_chain, to_csv};
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
        let refusal = ApiError::forbidden(format!(
            "organisation {} is neither the maker, a holder nor a counterparty of lot {lot}",
            caller.org_id
        ));
        return Err(access::refuse(
            state.index.as_ref(),
            &caller,
            request.method.as_str(),
            &request.path,
            &format!("lot {gtin}/{lot}"),
            refusal,
            now_s(),
        )
        .await);
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
    Ok(access::restrict_to_caller(&caller, records))
}

/// A party to the shipment, an inspector or regulator, or anyone who may see
/// it as a shipment of a lot it carries (the maker, or a party to a shipment
/// it is upstream of: [`access::visible_shipments`]).
async fn may_read_readings(
    index: &dyn crate::index::IndexStore,
    caller: &access::Caller,
    shipment: &Shipment,
) -> Result<bool, ApiError> {
    if may_read_shipment(caller, shipment) {
        return Ok(true);
    }
    for lot_ref in shipment.get_lots() {
        // The processor stores lot references with the GTIN normalised.
        if let Some(records) = load_lot(index, lot_ref.get_gtin(), lot_ref.get_lot()).await? {
            if access::visible_shipments(caller, &records).contains(shipment.get_shipment_id()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
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
    let verify_payloads = match request.query.get("verify").map(String::as_str) {
        None | Some("chain") => false,
        Some("payloads") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_parameter",
                format!(
                    "verify={:?} must be chain (the default) or payloads",
                    crate::identifiers::shorten(other)
                ),
            ))
        }
    };
    if verify_payloads && (csv || request.query.contains_key("points")) {
        return Err(ApiError::bad_request(
            "bad_parameter",
            "verify=payloads checks a page of readings; it cannot be combined with points= or format=csv".into(),
        ));
    }
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
    if !may_read_readings(index, &caller, &shipment.record).await? {
        let refusal = ApiError::forbidden(format!(
            "organisation {} is neither a party to shipment {shipment_id}, nor the maker of a lot it carries, nor a party to a shipment it is upstream of",
            caller.org_id
        ));
        return Err(access::refuse(
            index,
            &caller,
            request.method.as_str(),
            &request.path,
            &format!("shipment {shipment_id} readings"),
            refusal,
            now_s(),
        )
        .await);
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
    // Chart mode summarises every reading of the window in the index (no row
    // limit); the other modes read one page.
    let rows = match points {
        Some(_) => Vec::new(),
        None => {
            index
                .readings(ReadingsQuery {
                    shipment_id: shipment_id.clone(),
                    from_s,
                    to_s,
                    after,
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                })
                .await?
        }
    };
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
        // A CSV has no place for it in the body: the block it is true at travels as headers.
        if let Some(head) = index.head().await? {
            let headers = response.headers_mut();
            if let Ok(value) = head.block_id.parse() {
                headers.insert("x-coldchain-as-of-block", value);
            }
            if let Ok(value) = head.block_num.to_string().parse() {
                headers.insert("x-coldchain-as-of-block-num", value);
            }
        }
        return Ok(response);
    }
    let thermal = load::<ThermalRecord>(index, RecordKind::ShipmentThermal, &shipment_id).await?;
    let on_chain_head = thermal
        .as_ref()
        .map(|t| t.record.get_readings_chain_head().to_string())
        .unwrap_or_default();
    let batches = index.readings_batches(&shipment_id).await?;
    let chain = check_chain(&batches, &on_chain_head);
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
        let query = BucketQuery {
            shipment_id: shipment_id.clone(),
            from_s,
            to_s,
            layout: BucketLayout::Points(u32::try_from(points).unwrap_or(200)),
        };
        // `buckets` blends every logger (as before); `series` keeps each
        // logger apart on the same grid, so a chart can draw one line per logger.
        let buckets = index.reading_buckets(query.clone()).await?;
        let series = index.device_reading_buckets(query).await?;
        return json_answer(
            200,
            &json!({
                "shipment_id": shipment_id, "as_of_block": as_of_block, "profile": profile, "thermal": thermal_view,
                "chain": chain, "buckets": buckets, "series": series, "evidence": evidence,
            }),
        );
    }
    let next = (rows.len() as u64 == limit)
        .then(|| {
            rows.last()
                .map(|r| format!("{}:{}:{}", r.time_s, r.sequence, r.device_id))
        })
        .flatten();
    let mut answer = json!({
        "shipment_id": shipment_id, "as_of_block": as_of_block, "profile": profile, "thermal": thermal_view,
        "chain": chain, "readings": rows, "next_cursor": next, "evidence": evidence,
    });
    if verify_payloads {
        let checks = verify_page_payloads(state, &rows, &batches).await?;
        answer["payloads"] = json!({
            "verified": checks.iter().all(crate::readings::PayloadCheck::ok),
            "transactions": checks,
        });
    }
    json_answer(200, &answer)
}

/// Most transactions one `verify=payloads` page fetches from the node.
const MAX_VERIFY_TRANSACTIONS: usize = 50;

/// Fetches the payload of every transaction the page's rows came from and
/// checks it against the stored digest and the rows (one node call each).
async fn verify_page_payloads(
    state: &AppState,
    rows: &[crate::index::ReadingRow],
    batches: &[crate::index::ReadingsBatchRow],
) -> Result<Vec<crate::readings::PayloadCheck>, ApiError> {
    let mut by_txn: Vec<(&str, Vec<&crate::index::ReadingRow>)> = Vec::new();
    for row in rows {
        match by_txn.iter_mut().find(|(id, _)| *id == row.txn_id) {
            Some((_, list)) => list.push(row),
            None => by_txn.push((&row.txn_id, vec![row])),
        }
    }
    if by_txn.len() > MAX_VERIFY_TRANSACTIONS {
        return Err(ApiError::bad_request(
            "too_many_transactions",
            format!(
                "this page's readings come from {} transactions; verify=payloads fetches at most {MAX_VERIFY_TRANSACTIONS} from the node per request: ask for a smaller limit",
                by_txn.len()
            ),
        ));
    }
    let mut checks = Vec::with_capacity(by_txn.len());
    for (txn_id, rows) in by_txn {
        let stored = batches
            .iter()
            .find(|b| b.txn_id == txn_id)
            .map(|b| b.payload_sha512.as_str());
        checks.push(match state.node.transaction_payload(txn_id).await {
            Ok(Some(payload)) => crate::readings::check_payload(txn_id, &payload, stored, &rows),
            Ok(None) => crate::readings::PayloadCheck::unavailable(
                txn_id,
                rows.len(),
                "the node does not have this transaction".into(),
            ),
            Err(error) => crate::readings::PayloadCheck::unavailable(
                txn_id,
                rows.len(),
                format!("the node could not be asked: {error}"),
            ),
        });
    }
    Ok(checks)
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
