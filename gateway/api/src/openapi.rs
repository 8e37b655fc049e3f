//! The OpenAPI 3 description of the API, served at `/openapi.json`: every
//! route (exactly [`crate::routes::ROUTES`]), its parameters, and the JSON
//! schema of each answer (`components.schemas`) and of the error body
//! (`components.responses`). `tests/openapi_routes.rs` checks the paths
//! against the router; `tests/openapi_schemas.rs` validates real answers of
//! every endpoint against these schemas.
use serde_json::{json, Map, Value};

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Public,
    /// A signed request or a bearer token.
    Partner,
    /// A signed request only (token creation).
    Signed,
}

/// `{"$ref": "#/components/schemas/{name}"}`.
fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A reference that may also be null (OpenAPI 3.0 ignores siblings of
/// `$ref`, so `nullable` wraps it in `allOf`).
fn nullable(name: &str) -> Value {
    json!({"nullable": true, "allOf": [schema(name)]})
}

/// A JSON answer with the schema `name`.
fn answer(description: &str, media: &str, name: &str) -> Value {
    json!({"description": description, "content": {media: {"schema": schema(name)}}})
}

/// The reusable error response for an HTTP status.
fn error_response(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BadRequest", "malformed input (bad_parameter, bad_identifier, bad_digital_link, query_too_long, …)"),
        401 => ("Unauthorized", "no, stale or bad partner credentials (unauthorized, replayed_request)"),
        403 => ("Forbidden", "the partner may not see this, or its agent is revoked (forbidden)"),
        404 => ("NotFound", "not on the ledger (as indexed) (not_found)"),
        408 => ("RequestTimeout", "the body did not arrive in full within 10 s (body_timeout)"),
        411 => ("LengthRequired", "a chunked body without Content-Length (length_required)"),
        413 => ("PayloadTooLarge", "a body over 8 MiB (body_too_large)"),
        406 => ("NotAcceptable", "the request's Accept header admits no JSON answer (not_acceptable)"),
        429 => ("TooManyRequests", "the node, or the token replay guard, is full (batch_refused, too_many_signed_requests)"),
        502 => ("BadGateway", "the node could not be reached or refused the batch (node_unavailable, batch_refused)"),
        _ => ("ServiceUnavailable", "the index cannot answer (index_unavailable, index_corrupt)"),
    }
}

/// Every error status an operation documents.
const ERROR_STATUSES: [u16; 11] = [400, 401, 403, 404, 406, 408, 411, 413, 429, 502, 503];

/// An operation: `success` maps status codes to responses; every operation
/// can answer 400 (query string) and 503 (index), partner ones 401 and 403,
/// plus the `errors` given.
fn op(summary: &str, access: Access, params: Value, success: Value, errors: &[u16]) -> Value {
    let mut responses = success.as_object().cloned().unwrap_or_default();
    let mut statuses = vec![400, 503];
    if access != Access::Public {
        statuses.extend([401, 403]);
    }
    statuses.extend(errors);
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let (name, _) = error_response(status);
        // An operation's own answer for a status (verification's 503) wins.
        responses
            .entry(status.to_string())
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
    let mut operation = json!({"summary": summary, "parameters": params, "responses": responses});
    match access {
        Access::Public => {}
        Access::Partner => {
            operation["security"] = json!([{"partnerSignature": []}, {"partnerToken": []}])
        }
        Access::Signed => operation["security"] = json!([{"partnerSignature": []}]),
    }
    operation
}

fn param(name: &str, location: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": location, "required": required, "description": description, "schema": {"type": "string"}})
}

/// A non-JSON answer (the web page and its assets).
fn asset(summary: &str, media: &str) -> Value {
    json!({"get": {"summary": summary, "parameters": [],
        "responses": {"200": {"description": summary, "content": {media: {"schema": {"type": "string"}}}}}}})
}

fn string() -> Value {
    json!({"type": "string"})
}
fn integer() -> Value {
    json!({"type": "integer"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn strings(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}
fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn nullable_of(kind: &str) -> Value {
    json!({"type": kind, "nullable": true})
}

/// An object whose every property is always present (nullable ones as null).
fn object(description: &str, properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    object_with(
        description,
        properties,
        &required.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// An object where only `required` are always present.
fn object_with(description: &str, properties: Value, required: &[&str]) -> Value {
    let mut object = json!({"type": "object", "properties": properties, "required": required});
    if !description.is_empty() {
        object["description"] = json!(description);
    }
    object
}

const LOT_STATUS: &[&str] = &[
    "lot_status_unset",
    "active",
    "quarantined",
    "recalled",
    "compromised",
    "dispensed",
    "destroyed",
];

/// The schemas of every answer (`components.schemas`).
fn schemas() -> Value {
    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| {
        s.insert(name.to_string(), schema);
    };
    add(
        "Error",
        object(
            "every 4xx/5xx answer",
            json!({
        "error": {"type": "string", "description": "a stable code: bad_parameter, unauthorized, forbidden, not_found, index_unavailable, …"},
        "message": {"type": "string", "description": "what was wrong, for a person"}}),
        ),
    );
    add(
        "BlockRef",
        object(
            "the indexed block an answer is true at",
            json!({
        "block_id": string(), "block_num": integer(), "previous_block_id": string(), "state_root": string()}),
        ),
    );
    add(
        "Evidence",
        object(
            "where a record version was written: the proof behind an answer",
            json!({
        "record": strings(&["organization", "site", "agent", "device", "gateway_grant", "lot", "pack", "blood_unit",
            "shipment", "emergency_request", "blood_offer", "shipment_thermal", "goods_thermal"]),
        "address": string(), "block_num": integer(), "block_id": string(), "transaction_id": string()}),
        ),
    );
    add(
        "RecordVersion",
        object(
            "one version of a record",
            json!({
        "block_num": integer(), "block_id": string(), "txn_id": string(), "deleted": boolean()}),
        ),
    );
    add(
        "Status",
        object(
            "index and follower state",
            json!({
        "index_head": nullable("BlockRef"),
        "chain_head_num": {"type": "integer", "nullable": true, "description": "null when the node cannot be asked and no block was announced"},
        "lag_blocks": nullable_of("integer"),
        "lag_seconds": {"type": "number", "nullable": true, "description": "since the chain head was first seen beyond the index head; 0 when level"},
        "index_rebuilt": {"type": "string", "nullable": true, "description": "what opening the index rebuilt, or null"},
        "follower_connected": boolean(),
        "follower_last_error": {"type": "string", "description": "empty when none"},
        "fresh": {"type": "boolean", "description": "the index is known to be current: verification gives verdicts (never with --no-follow, where the index is served as it is)"},
        "stale_reason": {"type": "string", "nullable": true, "description": "why the index is not known to be current; null when fresh"}}),
        ),
    );
    let lag_fields = || {
        json!({
        "index_head": {"type": "integer", "nullable": true, "description": "the newest indexed block number; null when the index is empty"},
        "chain_head_num": {"type": "integer", "nullable": true, "description": "the node's chain head as the follower last saw it; null before any"},
        "lag_blocks": {"type": "integer", "nullable": true, "description": "blocks the index is behind the chain head; null when the head is unknown"},
        "lag_seconds": {"type": "number", "description": "since the oldest block the index misses was first seen; 0 when level (a quiet chain is not lag)"},
        "seconds_since_contact": {"type": "number", "nullable": true, "description": "since the chain follower last heard from the node; null when never"}})
    };
    let with_lag = |extra: Value| {
        let mut properties = lag_fields();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            properties[k] = v;
        }
        properties
    };
    let states = ["behind", "stuck", "no_contact", "empty"];
    add(
        "CannotVerifyNow",
        object(
            "503 instead of a verdict: the index cannot be trusted to be current (this is not a counterfeit signal)",
            with_lag(json!({
        "error": strings(&["cannot_verify_now"]),
        "message": {"type": "string", "description": "for the pharmacist: the ledger cannot be checked right now, this is not a counterfeit warning, how far behind, try again"},
        "state": strings(&states),
        "reason": {"type": "string", "description": "for the operator: what is wrong"},
        "retry_after_s": {"type": "integer", "description": "also in the Retry-After header"}})),
        ),
    );
    add(
        "StuckBlock",
        object(
            "the block the chain follower failed on 3 times or more in a row",
            json!({
        "block_num": integer(), "block_id": string(), "failures": integer(), "reason": string()}),
        ),
    );
    let mut health_states = vec!["ok"];
    health_states.extend(states);
    add(
        "Health",
        object(
            "whether verification gives verdicts now (200 ok) or not (503) and why",
            with_lag(json!({
        "status": strings(&health_states),
        "reason": {"type": "string", "nullable": true, "description": "why not ok; null when ok"},
        "following": {"type": "boolean", "description": "false with --no-follow (the index is served as it is, verdicts are given)"},
        "stuck_block": nullable("StuckBlock"),
        "max_lag_blocks": integer(), "max_lag_seconds": {"type": "number"}})),
        ),
    );
    add(
        "LotSummary",
        object(
            "the registered lot, as verification shows it",
            json!({
        "product_name": string(), "expiry_date": {"type": "integer", "description": "YYYYMMDD"},
        "status": strings(LOT_STATUS), "manufacturer_org_id": string()}),
        ),
    );
    add(
        "Verification",
        object(
            "a verdict with the evidence behind it",
            json!({
        "verdict": strings(&["authentic_in_spec", "compromised", "recalled", "quarantined", "expired", "already_dispensed", "unknown"]),
        "reasons": array(string()),
        "gtin": {"type": "string", "description": "normalised to 14 digits"},
        "lot": {"type": "string", "nullable": true, "description": "as asked, or the pack's lot; null when neither"},
        "serial": nullable_of("string"),
        "lot_record": nullable("LotSummary"),
        "expiry_on_pack": {"type": "integer", "nullable": true, "description": "the expiry the scan or link carried (AI 17) as YYYYMMDD, day 00 resolved to the month's last day; null when none was given. A mismatch with lot_record.expiry_date makes the verdict unknown"},
        "as_of_block": nullable("BlockRef"),
        "index_lag_blocks": {"type": "integer", "nullable": true, "description": "blocks the index was behind the chain head (at most max_lag_blocks); null with --no-follow"},
        "evidence": array(schema("Evidence")),
        "lot_versions": array(schema("RecordVersion"))}),
        ),
    );
    add(
        "Profile",
        object(
            "storage profile (hundredths of a degree Celsius)",
            json!({
        "name": string(), "min_cdeg": integer(), "max_cdeg": integer()}),
        ),
    );
    add(
        "StatusStep",
        object(
            "a lot status change",
            json!({
        "from": strings(LOT_STATUS), "to": strings(LOT_STATUS), "by_public_key": string(), "at_s": integer(), "reason": string()}),
        ),
    );
    add(
        "Product",
        object(
            "the lot",
            json!({
        "gtin": string(), "lot": string(), "product_name": string(), "expiry_date": integer(), "quantity": integer(),
        "status": strings(LOT_STATUS), "manufacturer_org_id": string(),
        "custodian_org_id": {"type": "string", "description": "empty when holder_withheld"},
        "site_gln": {"type": "string", "description": "empty when holder_withheld"},
        "holder_withheld": boolean(), "profile": schema("Profile"), "status_history": array(schema("StatusStep"))}),
        ),
    );
    add(
        "Handoff",
        object(
            "a decided or pending hand-off, with the thermal status at that moment",
            json!({
        "shipment_id": string(), "from_org_id": string(), "to_org_id": string(), "at_gln": string(),
        "proposed_at_s": integer(), "decided_at_s": integer(),
        "outcome": strings(&["handoff_outcome_unset", "proposed", "accepted", "accepted_into_quarantine", "rejected", "cancelled_by_proposer"]),
        "reason": string(),
        "thermal_status": strings(&["in_spec", "in_excursion", "compromised", "no_readings"]),
        "reading_count": integer(), "min_cdeg": integer(), "max_cdeg": integer(), "time_above_s": integer(), "time_below_s": integer()}),
        ),
    );
    add(
        "Excursion",
        object(
            "an excursion out of the allowed range",
            json!({
        "device_id": {"type": "string", "description": "the logger whose readings left the range (empty when the record does not say)"},
        "high": boolean(), "start_s": integer(),
        "end_s": {"type": "integer", "nullable": true, "description": "null while open"},
        "peak_cdeg": integer(), "duration_s": integer()}),
        ),
    );
    add(
        "Gap",
        object(
            "a data gap of one logger",
            json!({"device_id": string(), "from_s": integer(), "to_s": integer()}),
        ),
    );
    add("ThermalSummary", object("a thermal record (lists at most the oldest 100 closed excursions and gaps; *_total count all)", json!({
        "subject": string(), "reading_count": integer(),
        "min_cdeg": {"type": "integer", "nullable": true, "description": "null without readings"},
        "max_cdeg": {"type": "integer", "nullable": true, "description": "null without readings"},
        "mkt_cdeg": {"type": "integer", "nullable": true, "description": "mean kinetic temperature; null without readings"},
        "first_time_s": integer(), "last_time_s": integer(), "time_in_range_s": integer(), "time_out_of_range_s": integer(),
        "time_above_s": integer(), "time_below_s": integer(), "warnings": integer(),
        "excursions_total": integer(), "excursions": array(schema("Excursion")),
        "gaps_total": integer(), "time_in_gaps_s": integer(), "gaps": array(schema("Gap")),
        "compromised": boolean(), "compromised_reason": string(), "readings_chain_head": string(),
        "stability_budget_used_ppb": {"type": "integer", "nullable": true, "description": "fraction of the product's stability budget used, parts per billion (1000000000 = all); null when the profile has no budget"},
        "stability_budget_used": {"type": "string", "nullable": true, "description": "the same as people read it, e.g. \"37 %\""},
        "loggers": array(schema("Logger"))})));
    add("Logger", object("one logger's own track in a thermal record (per shipment and logger on a lot's record); device_id is empty for readings recorded before per-logger tracks", json!({
        "device_id": string(), "shipment_id": string(), "reading_count": integer(),
        "min_cdeg": {"type": "integer", "nullable": true}, "max_cdeg": {"type": "integer", "nullable": true},
        "mkt_cdeg": {"type": "integer", "nullable": true},
        "first_time_s": integer(), "last_time_s": integer(), "time_above_s": integer(), "time_below_s": integer(),
        "warnings": integer(), "excursions_total": integer(), "gaps_total": integer(),
        "stability_budget_used_ppb": {"type": "integer", "nullable": true},
        "compromised": boolean(), "compromised_reason": string(),
        "readings_chain_head": string(), "readings_batches": integer()})));
    add(
        "Shipment",
        object(
            "a shipment of the lot the caller may see",
            json!({
        "shipment_id": string(), "from_gln": string(), "to_gln": string(),
        "status": strings(&["shipment_status_unset", "preparing", "handoff_pending", "in_transit", "delivered", "refused", "cancelled"]),
        "custodian_org_id": string(), "device_ids": array(string()), "thermal": nullable("ThermalSummary")}),
        ),
    );
    add(
        "Provenance",
        object(
            "lot provenance",
            json!({
        "as_of_block": nullable("BlockRef"), "product": schema("Product"), "custody": array(schema("Handoff")),
        "shipments": array(schema("Shipment")), "thermal": nullable("ThermalSummary"), "evidence": array(schema("Evidence"))}),
        ),
    );
    add(
        "ChainCheck",
        object(
            "the readings hash chain recomputed from the indexed digests",
            json!({
        "batches": integer(), "recomputed_head": string(), "on_chain_head": string(), "intact": boolean()}),
        ),
    );
    add(
        "Reading",
        object(
            "one reading",
            json!({
        "shipment_id": string(), "device_id": string(), "sequence": integer(), "time_s": integer(),
        "temperature_cdeg": integer(), "humidity_permille": nullable_of("integer"),
        "door": {"type": "integer", "description": "0 unknown, 1 closed, 2 open"},
        "block_num": integer(), "txn_id": string()}),
        ),
    );
    add(
        "Bucket",
        object(
            "the readings of one chart bucket",
            json!({
        "from_s": integer(), "to_s": integer(), "count": integer(), "min_cdeg": integer(), "max_cdeg": integer(),
        "mean_cdeg": integer(), "first_reading_s": integer(), "last_reading_s": integer()}),
        ),
    );
    add(
        "DeviceSeries",
        object(
            "one logger's chart buckets, on the same time grid as `buckets` (all loggers together)",
            json!({"device_id": string(), "buckets": array(schema("Bucket"))}),
        ),
    );
    add(
        "PayloadCheck",
        object(
            "one readings transaction checked against the node's payload",
            json!({
        "transaction_id": string(), "payload_found": boolean(), "digest_matches": boolean(), "rows_match": boolean(),
        "rows_checked": integer(), "problem": {"type": "string", "nullable": true, "description": "what was wrong, when something was"}}),
        ),
    );
    add(
        "PayloadVerification",
        object(
            "verify=payloads",
            json!({
        "verified": boolean(), "transactions": array(schema("PayloadCheck"))}),
        ),
    );
    let readings_common = |extra: Value| {
        let mut properties = json!({
            "shipment_id": string(), "as_of_block": nullable("BlockRef"), "profile": nullable("Profile"),
            "thermal": nullable("ThermalSummary"), "chain": schema("ChainCheck"), "evidence": array(schema("Evidence"))});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            properties[k] = v;
        }
        properties
    };
    let page = readings_common(json!({
        "readings": array(schema("Reading")),
        "next_cursor": {"type": "string", "nullable": true, "description": "pass as after= for the next page; null on the last"},
        "payloads": schema("PayloadVerification")}));
    let page_required: Vec<&str> = page
        .as_object()
        .map(|p| {
            p.keys()
                .map(String::as_str)
                .filter(|k| *k != "payloads")
                .collect()
        })
        .unwrap_or_default();
    add(
        "ReadingsPage",
        object_with(
            "a page of readings (payloads only with verify=payloads)",
            page.clone(),
            &page_required,
        ),
    );
    add(
        "ReadingsChart",
        object(
            "chart buckets (points=N)",
            readings_common(
                json!({"buckets": array(schema("Bucket")), "series": array(schema("DeviceSeries"))}),
            ),
        ),
    );
    add(
        "BloodRequest",
        object(
            "an open emergency request",
            json!({
        "request_id": string(),
        "component": strings(&["blood_component_unset", "red_cells", "whole_blood", "platelets", "fresh_frozen_plasma", "cryoprecipitate"]),
        "blood_type": {"type": "string", "description": "the patient's, like O- or AB+"}, "units": integer(),
        "priority": strings(&["priority_unset", "routine", "urgent", "emergency"]),
        "needed_by_s": integer(), "hospital_org_id": string(), "hospital_gln": string(),
        "status": strings(&["request_status_unset", "open", "offer_accepted", "fulfilled", "request_cancelled"]),
        "offers": integer(), "evidence": schema("Evidence")}),
        ),
    );
    add(
        "BloodRequests",
        object(
            "the blood board's requests",
            json!({
        "as_of_block": nullable("BlockRef"), "requests": array(schema("BloodRequest"))}),
        ),
    );
    add(
        "BloodUnit",
        object(
            "an available unit",
            json!({
        "donation_id": string(),
        "din_label": {"type": "string", "description": "the DIN as printed on the label, with the boxed ISO 7064 MOD 37-2 check character: A9999 26 123456 [T]"},
        "check_character": {"type": "string", "description": "the DIN's check character alone"},
        "component": strings(&["blood_component_unset", "red_cells", "whole_blood", "platelets", "fresh_frozen_plasma", "cryoprecipitate"]),
        "blood_type": string(), "volume_ml": integer(), "expiry_date": integer(), "holder_org_id": string(),
        "site_gln": string(), "evidence": schema("Evidence")}),
        ),
    );
    add(
        "BloodUnits",
        object(
            "the blood board's units, soonest expiry first",
            json!({
        "as_of_block": nullable("BlockRef"), "units": array(schema("BloodUnit"))}),
        ),
    );
    add(
        "BatchesAccepted",
        object(
            "the node took the batches (wait=0)",
            json!({
        "batch_ids": {"type": "array", "items": string(), "description": "the ids of the batches the node took (before 2026-12 a comma-separated string, with the node's `link`); POST with wait=N to wait for their statuses"}}),
        ),
    );
    add("BatchStatus", {
        let mut status = object_with(
            "a batch status as the node's REST API reports it",
            json!({
            "id": string(), "status": strings(&["COMMITTED", "INVALID", "PENDING", "UNKNOWN"]),
            "invalid_transactions": array(json!({"type": "object", "additionalProperties": true}))}),
            &["id", "status"],
        );
        status["additionalProperties"] = json!(true);
        status
    });
    add(
        "BatchesStatus",
        object(
            "the batches' statuses after waiting (wait=N)",
            json!({
        "batch_ids": array(string()), "statuses": {"type": "array", "nullable": true, "items": schema("BatchStatus")}}),
        ),
    );
    add(
        "Token",
        object(
            "a new API token",
            json!({"token": string(), "public_key": string(), "org_id": string()}),
        ),
    );
    add(
        "AuditEntry",
        object(
            "a restricted read, served (200) or refused (403)",
            json!({
        "at_s": integer(), "public_key": string(), "org_id": string(), "method": string(), "path": string(),
        "subject": string(), "status": integer()}),
        ),
    );
    add(
        "AuditLog",
        object(
            "newest first",
            json!({"entries": array(schema("AuditEntry"))}),
        ),
    );
    // EPCIS 2.0 JSON-LD, as `crate::epcis` writes it.
    add(
        "EpcisDocument",
        object(
            "EPCIS 2.0 document of a lot's events",
            json!({
        "@context": array(json!({"description": "a context URL or an object of prefixes"})),
        "type": strings(&["EPCISDocument"]), "schemaVersion": strings(&["2.0"]),
        "creationDate": {"type": "string", "format": "date-time"},
        "as_of_block": nullable("BlockRef"),
        "epcisBody": object("", json!({"eventList": array(json!({"oneOf": [schema("EpcisTransactionEvent"), schema("EpcisObjectEvent")]}))}))}),
        ),
    );
    let quantity = array(object(
        "",
        json!({"epcClass": string(), "quantity": integer()}),
    ));
    let biz_transactions = array(object(
        "",
        json!({"type": strings(&["bol"]), "bizTransaction": string()}),
    ));
    add(
        "EpcisTransactionEvent",
        object(
            "an accepted hand-off",
            json!({
        "type": strings(&["TransactionEvent"]), "eventTime": {"type": "string", "format": "date-time"},
        "eventTimeZoneOffset": string(), "action": strings(&["ADD"]), "bizStep": strings(&["receiving"]),
        "disposition": strings(&["in_progress", "non_sellable_other"]),
        "quantityList": quantity.clone(), "readPoint": object("", json!({"id": string()})),
        "bizTransactionList": biz_transactions.clone(),
        "sourceList": array(object("", json!({"type": strings(&["owning_party"]), "source": string()}))),
        "destinationList": array(object("", json!({"type": strings(&["owning_party"]), "destination": string()}))),
        "coldchain:evidence": object("", json!({"blockId": string(), "transactionId": string()}))}),
        ),
    );
    add(
        "EpcisObjectEvent",
        object(
            "a shipment's sensor reports, one element per hour",
            json!({
        "type": strings(&["ObjectEvent"]), "eventTime": {"type": "string", "format": "date-time"},
        "eventTimeZoneOffset": string(), "action": strings(&["OBSERVE"]), "bizStep": strings(&["sensor_reporting"]),
        "quantityList": quantity, "bizTransactionList": biz_transactions,
        "sensorElementList": array(object("", json!({
            "sensorMetadata": object("", json!({"startTime": string(), "endTime": string(), "deviceID": string(), "rawData": string(), "bizRules": string()})),
            "sensorReport": array(json!({"oneOf": [schema("EpcisSensorAggregate"), schema("EpcisSensorAlarm")]}))})))}),
        ),
    );
    add(
        "EpcisSensorAggregate",
        object(
            "min/max/mean of a window (°C)",
            json!({
        "type": strings(&["gs1:Temperature"]), "minValue": json!({"type": "number"}), "maxValue": json!({"type": "number"}),
        "meanValue": json!({"type": "number"}), "uom": strings(&["CEL"])}),
        ),
    );
    add(
        "EpcisSensorAlarm",
        object(
            "the window left the allowed range",
            json!({
        "type": strings(&["gs1:Temperature"]), "exception": strings(&["ALARM_CONDITION"]), "value": json!({"type": "number"}),
        "uom": strings(&["CEL"]), "coldchain:allowedRange": array(json!({"type": "number"}))}),
        ),
    );
    add(
        "LightweightVerification",
        object_with(
            "the GS1 Lightweight Messaging Standard's verification response (release 1.0.2/1.1; codes as in the DSCSA implementation guideline 1.3), with our own verdict beside it in `coldchain`",
            json!({
        "verificationTimestamp": {"type": "string", "description": "when the answer was made, ISO 8601 UTC with milliseconds"},
        "responderGLN": {"type": "string", "description": "a GLN of the organisation that made the serial's lot (its first registered site); absent when no pack with this GTIN and serial is on the ledger"},
        "data": object_with("the standard's answer", json!({
            "verified": {"type": "boolean", "description": "true only when GTIN, serial, lot and expiry match the ledger and the pack may be dispensed (authentic_in_spec)"},
            "verificationFailureReason": strings(&["No_match_GTIN_Serial", "No_match_GTIN_Serial_Lot", "No_match_GTIN_Serial_Expiry", "No_match_GTIN_Serial_Lot_Expiry", "Not_for_re-distribution", "Manufacturer_policy", "No_reason_provided"]),
            "additionalInfo": strings(&["Recalled", "Expired", "Suspect", "Illegitimate"])}), &["verified"]),
        "corrUUID": {"type": "string", "description": "the request's corrUUID, or a new UUID when it sent none"},
        "coldchain": object("our verdict and its reasons (cold chain, recall, quarantine, dispensing, …), naming the block it is true at", json!({
            "verdict": strings(&["authentic_in_spec", "compromised", "recalled", "quarantined", "expired", "already_dispensed", "unknown"]),
            "reasons": array(string()), "gtin": string(), "lot": string(), "serial": string(),
            "context": string(), "reqGLN": string(), "as_of_block": nullable("BlockRef")}))}),
            &["verificationTimestamp", "data", "corrUUID", "coldchain"],
        ),
    );
    Value::Object(s)
}

/// `components.responses`: one per error status, all with the Error body.
fn responses() -> Value {
    let mut r = Map::new();
    for status in ERROR_STATUSES {
        let (name, description) = error_response(status);
        r.insert(
            name.to_string(),
            json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}}),
        );
    }
    Value::Object(r)
}

/// The OpenAPI document. Its paths are exactly [`crate::routes::ROUTES`].
pub fn document() -> Value {
    let gtin = param(
        "gtin",
        "path",
        true,
        "GTIN-8/12/13/14 with a valid check digit",
    );
    let lot = param("lot", "path", true, "lot (batch) number");
    let serial = param("serial", "path", true, "serial");
    let expiry = param("17", "query", false, "printed expiry YYMMDD");
    // 503: cannot_verify_now (the index is not current) or the Error body (index_unavailable).
    let verdict = || {
        json!({"200": answer("the verdict, naming the block it is true at (as_of_block)", "application/json", "Verification"),
        "503": {"description": "no verdict: the index cannot be trusted to be current (cannot_verify_now, not a counterfeit signal; try again) or cannot answer (index_unavailable)",
            "headers": {"Retry-After": {"description": "with cannot_verify_now: seconds to wait before asking again", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"oneOf": [schema("CannotVerifyNow"), schema("Error")]}}}}})
    };
    let link = |summary: &str, params: Value| {
        let mut ok = verdict();
        ok["200"]["content"]["text/html"] = json!({"schema": {"type": "string"}});
        json!({"get": op(&format!("verify by GS1 Digital Link: {summary}; the web page instead when Accept includes text/html"), Access::Public, params, ok, &[])})
    };
    // GS1 Lightweight Messaging verification (DSCSA VRS): another method answers 405.
    let lightweight = |params: Value| {
        let mut params = params.as_array().cloned().unwrap_or_default();
        params.extend([
            param(
                "linkType",
                "query",
                false,
                "verificationService (the only one served)",
            ),
            param(
                "context",
                "query",
                false,
                "dscsaSaleableReturn (default) or dscsaExceptionVerification",
            ),
            param(
                "reqGLN",
                "query",
                true,
                "the requestor's GLN (13 digits, valid check digit)",
            ),
            param(
                "corrUUID",
                "query",
                false,
                "correlation UUID, echoed in the answer (one is assigned when absent)",
            ),
        ]);
        let mut ok = verdict();
        ok["200"] = answer("the standard's verification response: data.verified, verificationFailureReason and additionalInfo codes, corrUUID echoed; our verdict and reasons in coldchain", "application/json", "LightweightVerification");
        json!({"get": op("GS1 Lightweight Messaging Standard verification request (DSCSA VRS): GTIN, lot, serial and expiry of a pack; 503 cannot_verify_now while the index is not current, never verified: true from an old index", Access::Public, Value::Array(params), ok, &[406])})
    };
    let as_of = |header: &str| json!({"description": format!("with format=csv, when the index holds a block: the {header} the answer is true at"), "schema": {"type": "string"}});
    let readings_ok = json!({"200": {
        "description": "a page of readings (JSON), chart buckets (points=N) or CSV (format=csv: time_s,device_id,sequence,temperature_c,humidity_permille,door,block_num,transaction_id; door 1 closed, 2 open, empty when unknown)",
        "headers": {
            "X-Coldchain-As-Of-Block": as_of("block id"),
            "X-Coldchain-As-Of-Block-Num": as_of("block number"),
            "Content-Disposition": {"description": "with format=csv: attachment; filename=\"readings-{id}.csv\"", "schema": {"type": "string"}}
        },
        "content": {
            "application/json": {"schema": {"oneOf": [schema("ReadingsPage"), schema("ReadingsChart")]}},
            "text/csv": {"schema": {"type": "string"}}
        }
    }});
    let mut batches = op(
        "submit a serialised BatchList to the node; wait=N seconds for status",
        Access::Partner,
        json!([param("wait", "query", false, "0..60")]),
        json!({"202": answer("passed to the node (wait=0)", "application/json", "BatchesAccepted"),
               "200": answer("the statuses after waiting (wait=N)", "application/json", "BatchesStatus")}),
        &[408, 411, 413, 429, 502],
    );
    batches["requestBody"] = json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "coldchain provenance API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Answers from an index of the Sawtooth ledger; every answer names the block it is true at. Verification is public; other reads need a partner key: headers X-Coldchain-Key, X-Coldchain-Timestamp (unix s, within 300 s) and X-Coldchain-Signature (secp256k1 over METHOD\\npath\\nquery\\ntimestamp, SHA-256, compact hex), or Authorization: Bearer <token> from POST /api/v1/tokens. Every error is JSON {error, message} (components.schemas.Error)."},
        "paths": {
            "/api/v1/status": {"get": op("index head, chain head, lag in blocks and seconds, follower state, and whether opening the index rebuilt it", Access::Public, json!([]),
                json!({"200": answer("index and follower state", "application/json", "Status")}), &[])},
            "/api/v1/verify": {"get": op("verify a pack or lot; 503 cannot_verify_now instead of a verdict while the index is not current", Access::Public, json!([
                param("scan", "query", false, "what a barcode scanner typed: a GS1 element string ((01)…(17)…(10)…(21)… or raw with FNC1 = ASCII GS, optionally after a ]d2/]C1/]Q3/]e0 symbology identifier) or a GS1 Digital Link; names the pack alone (not with gtin/lot/serial/exp); a bad scan is 400 bad_scan"),
                param("gtin", "query", false, "GTIN (required unless scan is given)"), param("lot", "query", false, "lot"),
                param("serial", "query", false, "serial"), param("exp", "query", false, "printed expiry YYMMDD")]), verdict(), &[])},
            "/": asset("the web page: verify a pack (paste a Digital Link or type GTIN/lot/serial)", "text/html"),
            "/index.html": asset("the web page (same as /)", "text/html"),
            "/blood": asset("the web page's emergency blood board", "text/html"),
            "/app.js": asset("the web page's script", "text/javascript"),
            "/style.css": asset("the web page's style sheet", "text/css"),
            "/health": {"get": {"summary": "whether verification gives verdicts now: 200 ok, or 503 behind / stuck / no_contact / empty with the reason and the lag (for load balancers and monitoring)", "parameters": [],
                "responses": {"200": answer("verdicts are given: the index is current (or --no-follow)", "application/json", "Health"),
                    "503": answer("verdicts are refused (cannot_verify_now) until the index is current again", "application/json", "Health")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics: index and chain heads, lag in blocks and seconds, follower connected / stuck / failures, refused verifications", "parameters": [],
                "responses": {"200": {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "this document", "parameters": [],
                "responses": {"200": {"description": "this document", "content": {"application/json": {"schema": {"type": "object", "additionalProperties": true}}}}}}},
            // A GTIN alone names no pack or lot: JSON callers get 400 missing_lot_or_serial.
            "/01/{gtin}": {"get": op("GS1 Digital Link of a GTIN alone: the web page when Accept includes text/html; otherwise 400 missing_lot_or_serial (add /10/{lot} or /21/{serial} to verify)", Access::Public, json!([gtin.clone(), expiry.clone()]),
                json!({"200": {"description": "the web page (Accept: text/html)", "content": {"text/html": {"schema": {"type": "string"}}}}}), &[])},
            "/01/{gtin}/10/{lot}": link("GTIN and lot", json!([gtin.clone(), lot.clone(), expiry.clone()])),
            "/01/{gtin}/21/{serial}": link("GTIN and serial", json!([gtin.clone(), serial.clone(), expiry.clone()])),
            "/01/{gtin}/10/{lot}/21/{serial}": link("GTIN, lot and serial", json!([gtin.clone(), lot.clone(), serial.clone(), expiry])),
            "/vrs/01/{gtin}/10/{lot}/21/{serial}": lightweight(json!([gtin.clone(), lot.clone(), serial.clone(), param("17", "query", true, "printed expiry YYMMDD (GS1 AI 17)")])),
            "/vrs/gtin/{gtin}/lot/{lot}/ser/{serial}": lightweight(json!([gtin.clone(), lot.clone(), serial, param("exp", "query", true, "printed expiry YYMMDD")])),
            "/api/v1/lots/{gtin}/{lot}": {"get": op("lot provenance: product, custody chain, thermal summary", Access::Partner, json!([gtin.clone(), lot.clone()]),
                json!({"200": answer("the provenance, naming the block it is true at (as_of_block)", "application/json", "Provenance")}), &[404])},
            "/api/v1/lots/{gtin}/{lot}/epcis": {"get": op("EPCIS 2.0 JSON-LD document of the lot's events", Access::Partner, json!([gtin, lot]),
                json!({"200": answer("the EPCIS document", "application/ld+json", "EpcisDocument")}), &[404])},
            "/api/v1/shipments/{id}/readings": {"get": op("shipment readings with hash-chain check; paging, chart buckets, CSV", Access::Partner, json!([
                param("id", "path", true, "shipment id"), param("from", "query", false, "unix s"), param("to", "query", false, "unix s"),
                param("limit", "query", false, "page size, 1..5000 (CSV 1..200000)"), param("after", "query", false, "next_cursor of the previous page"),
                param("points", "query", false, "chart buckets 1..2000 (min/max/mean per bucket, over every reading of the window)"), param("format", "query", false, "json or csv (block in X-Coldchain-As-Of-Block headers)"), param("verify", "query", false, "chain (default) or payloads: check the page's rows against the node's transaction payloads")]),
                readings_ok, &[404])},
            "/api/v1/blood/requests": {"get": op("open emergency blood requests, most urgent first", Access::Partner, json!([]),
                json!({"200": answer("the open requests", "application/json", "BloodRequests")}), &[])},
            "/api/v1/blood/units": {"get": op("available in-spec compatible units", Access::Partner, json!([
                param("component", "query", false, "red_cells, whole_blood, platelets, fresh_frozen_plasma, cryoprecipitate"),
                param("abo", "query", false, "patient ABO (with rh and component)"), param("rh", "query", false, "+ or -"),
                param("site", "query", false, "GLN of the holding site"),
                param("unit", "query", false, "one unit's DIN: scanned (=A99992612345600), typed with its check character (A999926123456T) or the 13 characters"),
                param("product", "query", false, "a scanned ISBT 128 product code (=<E0398V00) in place of component")]),
                json!({"200": answer("the available units", "application/json", "BloodUnits")}), &[])},
            "/api/v1/batches": {"post": batches},
            "/api/v1/tokens": {"post": op("create an API token bound to the signing key (signed request only; each signed request creates one token: a replay answers 401 replayed_request)", Access::Signed, json!([param("label", "query", false, "label"), param("nonce", "query", false, "any unique value, to sign several token requests in one second")]),
                json!({"201": answer("the token (shown once)", "application/json", "Token")}), &[411, 413, 429])},
            "/api/v1/audit": {"get": op("audit log of restricted reads, served (status 200) and refused to registered agents (403): the caller's own; inspectors and regulators: everyone's, or one key's with key= (another key's from anyone else: 403)", Access::Partner, json!([
                param("limit", "query", false, "1..1000 (default 100), newest first"),
                param("key", "query", false, "inspectors and regulators only: the entries of this public key (ignored for other callers, who always get their own)")]),
                json!({"200": answer("the entries", "application/json", "AuditLog")}), &[])}
        },
        "components": {
            "schemas": schemas(),
            "responses": responses(),
            "securitySchemes": {
                "partnerSignature": {"type": "apiKey", "in": "header", "name": "X-Coldchain-Signature"},
                "partnerToken": {"type": "http", "scheme": "bearer"}
            }
        }
    })
}
