//! EPCIS 2.0 JSON-LD export of a lot's events: a TransactionEvent per custody
//! change (decided hand-off) and, per shipment with readings, an ObjectEvent
//! (bizStep `sensor_reporting`) whose `sensorElementList` carries window
//! aggregates (start/end, min/max/mean in CEL) with a pointer to the raw
//! readings, and an alarm report for windows outside the allowed range: one
//! sensor element per logger and window, each computed from that logger's
//! readings only (a shipment with two loggers has two series, not one blend).
//! Identifiers are GS1 Digital Link URIs (`https://id.gs1.org/01/…/10/…`);
//! our own ids are `urn:coldchain:<kind>:<id>` with the id percent-encoded
//! ([`coldchain_urn`]), so a profile named `refrigerated 2-8 C` stays one URI.
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{HandoffOutcome, StorageProfile, ThermalRecord};
use coldchain_processors::thermal::stability;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::index::{Bucket, BucketLayout, BucketQuery, IndexStore};
use crate::provenance::LotRecords;
use crate::readings::celsius;
use crate::records::load;

/// Window length of the sensor aggregates (every reading of a shipment is
/// summarised, up to [`crate::index::chunk::MAX_BUCKETS`] windows).
pub const WINDOW_S: u64 = 3_600;

/// RFC 3339 UTC time of unix seconds (chrono's calendar, the ledger's own:
/// `coldchain_processors::identifiers::utc_date_time`). The families refuse
/// times after 9999-12-31 23:59:59, which RFC 3339 cannot write; should one
/// reach the index anyway it is written `unix:<seconds>`, never a wrong date.
pub fn iso_time(unix_s: u64) -> String {
    use chrono::{Datelike, Timelike};
    match coldchain_processors::identifiers::utc_date_time(unix_s) {
        Some(time) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second()
        ),
        None => format!("unix:{unix_s}"),
    }
}

/// `urn:coldchain:<kind>:<id>`, the id percent-encoded (every byte but the
/// RFC 3986 unreserved `A-Z a-z 0-9 - . _ ~`): EPCIS fields such as
/// `deviceID` and `bizRules` are URIs, and ids and profile names may hold
/// spaces, commas or colons.
pub fn coldchain_urn(kind: &str, id: &str) -> String {
    let mut urn = format!("urn:coldchain:{kind}:");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            urn.push(char::from(byte));
        } else {
            urn.push_str(&format!("%{byte:02X}"));
        }
    }
    urn
}

fn number(cdeg: i32) -> Value {
    celsius(cdeg)
        .parse::<f64>()
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// The EPCIS document for a lot.
pub async fn lot_document(
    index: &dyn IndexStore,
    records: &LotRecords,
    now_s: u64,
) -> Result<Value, ApiError> {
    let as_of_block = index.head().await?;
    let lot = &records.lot.record;
    let class = format!(
        "https://id.gs1.org/01/{}/10/{}",
        lot.get_gtin(),
        lot.get_lot()
    );
    // The lot's stability budget (when its profile has one): how much each
    // shipment used (its worst logger) and all of them together, in an
    // extension field of the shipment's sensor event (EPCIS has no standard
    // field for it).
    let budget = lot.profile.as_ref().is_some_and(stability::has_budget);
    let lot_thermal = if budget {
        load::<ThermalRecord>(
            index,
            RecordKind::GoodsThermal,
            &goods_key(lot.get_gtin(), lot.get_lot()),
        )
        .await?
        .map(|found| found.record)
    } else {
        None
    };
    let mut events = Vec::new();
    for found in &records.shipments {
        let shipment = &found.record;
        let id = shipment.get_shipment_id();
        for handoff in shipment.get_handoffs() {
            let accepted = matches!(
                handoff.get_outcome(),
                HandoffOutcome::ACCEPTED | HandoffOutcome::ACCEPTED_INTO_QUARANTINE
            );
            if !accepted {
                continue;
            }
            events.push(json!({
                "type": "TransactionEvent",
                "eventTime": iso_time(handoff.get_decided_at_s()),
                "eventTimeZoneOffset": "+00:00",
                "action": "ADD",
                "bizStep": "receiving",
                "disposition": if handoff.get_outcome() == HandoffOutcome::ACCEPTED { "in_progress" } else { "non_sellable_other" },
                "quantityList": [{"epcClass": class, "quantity": lot.get_quantity()}],
                "readPoint": {"id": format!("https://id.gs1.org/414/{}", handoff.get_at_gln())},
                "bizTransactionList": [{"type": "bol", "bizTransaction": coldchain_urn("shipment", id)}],
                "sourceList": [{"type": "owning_party", "source": coldchain_urn("org", handoff.get_from_org_id())}],
                "destinationList": [{"type": "owning_party", "destination": coldchain_urn("org", handoff.get_to_org_id())}],
                "coldchain:evidence": {"blockId": found.evidence.block_id, "transactionId": found.evidence.transaction_id},
            }));
        }
        // One series per logger, all on the shipment's grid of hourly windows.
        let series = index
            .device_reading_buckets(BucketQuery {
                shipment_id: id.to_string(),
                from_s: 0,
                to_s: i64::MAX as u64,
                layout: BucketLayout::Width(WINDOW_S),
            })
            .await?;
        let Some(last_time_s) = series
            .iter()
            .filter_map(|s| s.buckets.last().map(|b| b.last_reading_s))
            .max()
        else {
            continue;
        };
        let profile = shipment
            .profile
            .clone()
            .unwrap_or_else(StorageProfile::default);
        let elements: Vec<Value> = series
            .iter()
            .flat_map(|s| {
                s.buckets
                    .iter()
                    .map(|b| sensor_element(id, &s.device_id, b, &profile))
            })
            .collect();
        let mut event = json!({
            "type": "ObjectEvent",
            "eventTime": iso_time(last_time_s),
            "eventTimeZoneOffset": "+00:00",
            "action": "OBSERVE",
            "bizStep": "sensor_reporting",
            "quantityList": [{"epcClass": class, "quantity": lot.get_quantity()}],
            "bizTransactionList": [{"type": "bol", "bizTransaction": coldchain_urn("shipment", id)}],
            "sensorElementList": elements,
        });
        if budget {
            let record = lot_thermal.clone().unwrap_or_default();
            let in_shipment = record
                .get_tracks()
                .iter()
                .filter(|t| t.get_shipment_id() == id)
                .map(|t| t.get_stability_used_ppb())
                .max()
                .unwrap_or(0);
            event["coldchain:stabilityBudget"] = json!({
                "usedInShipmentPpb": in_shipment,
                "usedInShipment": stability::show_used(in_shipment),
                "usedByLotPpb": record.get_stability_used_ppb(),
                "usedByLot": stability::show_used(record.get_stability_used_ppb()),
            });
        }
        events.push(event);
    }
    events.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
    Ok(json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"coldchain": "urn:coldchain:"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso_time(now_s),
        "as_of_block": as_of_block,
        "epcisBody": {"eventList": events},
    }))
}

/// One logger's window: its min/max/mean and, when it left the allowed
/// range, an alarm report.
fn sensor_element(
    shipment_id: &str,
    device_id: &str,
    b: &Bucket,
    profile: &StorageProfile,
) -> Value {
    let mut reports = vec![json!({
        "type": "gs1:Temperature", "minValue": number(b.min_cdeg), "maxValue": number(b.max_cdeg),
        "meanValue": number(b.mean_cdeg), "uom": "CEL",
    })];
    if b.max_cdeg > profile.get_max_cdeg() || b.min_cdeg < profile.get_min_cdeg() {
        let high = b.max_cdeg > profile.get_max_cdeg();
        reports.push(json!({
            "type": "gs1:Temperature", "exception": "ALARM_CONDITION",
            "value": number(if high { b.max_cdeg } else { b.min_cdeg }), "uom": "CEL",
            "coldchain:allowedRange": [number(profile.get_min_cdeg()), number(profile.get_max_cdeg())],
        }));
    }
    json!({
        "sensorMetadata": {
            "startTime": iso_time(b.from_s), "endTime": iso_time(b.to_s),
            "deviceID": coldchain_urn("device", device_id),
            "rawData": format!("/api/v1/shipments/{shipment_id}/readings?from={}&to={}", b.from_s, b.to_s),
            "bizRules": coldchain_urn("profile", profile.get_name()),
        },
        "sensorReport": reports,
    })
}

#[cfg(test)]
mod tests {
    use super::{coldchain_urn, iso_time};

    #[test]
    fn urns_percent_encode_what_a_uri_cannot_hold() {
        assert_eq!(
            coldchain_urn("profile", "refrigerated 2-8 C"),
            "urn:coldchain:profile:refrigerated%202-8%20C"
        );
        assert_eq!(
            coldchain_urn("device", "TRK-42,TRK-43"),
            "urn:coldchain:device:TRK-42%2CTRK-43"
        );
        assert_eq!(coldchain_urn("org", "café"), "urn:coldchain:org:caf%C3%A9");
        assert_eq!(
            coldchain_urn("shipment", "SHP_1.a~"),
            "urn:coldchain:shipment:SHP_1.a~"
        );
    }

    #[test]
    fn unix_seconds_render_as_rfc3339_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso_time(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(iso_time(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(iso_time(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(iso_time(253_402_300_800), "unix:253402300800");
        assert_eq!(iso_time(u64::MAX), "unix:18446744073709551615");
    }
}
