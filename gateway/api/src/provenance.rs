//! Lot provenance: the product, the custody chain (who handed to whom, where,
//! when, and the thermal status at each hand-off) and the lot's thermal
//! summary, each part with the block and transaction it was read from.
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::messages::coldchain::{
    Handoff, HandoffOutcome, Lot, Shipment, StorageProfile, ThermalRecord, ThermalSnapshot,
};
use coldchain_processors::thermal::mkt_cdeg;
use serde::Serialize;

use crate::error::ApiError;
use crate::index::{lot_key, BlockRef, IndexStore};
use crate::records::{load, Evidence, Found};

#[derive(Debug, Serialize)]
pub struct Profile {
    pub name: String,
    pub min_cdeg: i32,
    pub max_cdeg: i32,
}

pub fn profile_view(profile: &StorageProfile) -> Profile {
    Profile {
        name: profile.get_name().to_string(),
        min_cdeg: profile.get_min_cdeg(),
        max_cdeg: profile.get_max_cdeg(),
    }
}

#[derive(Debug, Serialize)]
pub struct Product {
    pub gtin: String,
    pub lot: String,
    pub product_name: String,
    pub expiry_date: u32,
    pub quantity: u64,
    pub status: String,
    pub manufacturer_org_id: String,
    /// Empty when `holder_withheld`.
    pub custodian_org_id: String,
    pub site_gln: String,
    /// The caller may not see who holds the lot now (it is not a party to the
    /// shipment that brought it there).
    pub holder_withheld: bool,
    pub profile: Profile,
    pub status_history: Vec<StatusStep>,
}

#[derive(Debug, Serialize)]
pub struct StatusStep {
    pub from: String,
    pub to: String,
    pub by_public_key: String,
    pub at_s: u64,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct HandoffView {
    pub shipment_id: String,
    pub from_org_id: String,
    pub to_org_id: String,
    pub at_gln: String,
    pub proposed_at_s: u64,
    pub decided_at_s: u64,
    pub outcome: String,
    pub reason: String,
    /// "in_spec", "in_excursion", "compromised" or "no_readings".
    pub thermal_status: &'static str,
    pub reading_count: u64,
    pub min_cdeg: i32,
    pub max_cdeg: i32,
    pub time_above_s: u64,
    pub time_below_s: u64,
}

#[derive(Debug, Serialize)]
pub struct ExcursionView {
    /// The logger whose readings left the range (empty on records that do not say).
    pub device_id: String,
    pub high: bool,
    pub start_s: u64,
    pub end_s: Option<u64>,
    pub peak_cdeg: i32,
    pub duration_s: u64,
}

#[derive(Debug, Serialize)]
pub struct ThermalSummary {
    pub subject: String,
    pub reading_count: u64,
    pub min_cdeg: Option<i32>,
    pub max_cdeg: Option<i32>,
    pub mkt_cdeg: Option<i32>,
    pub first_time_s: u64,
    pub last_time_s: u64,
    pub time_in_range_s: u64,
    pub time_out_of_range_s: u64,
    pub time_above_s: u64,
    pub time_below_s: u64,
    pub warnings: u32,
    /// Every excursion, closed and open (the list below names at most the
    /// oldest [`LISTED`] closed ones, plus the open one).
    pub excursions_total: u64,
    pub excursions: Vec<ExcursionView>,
    /// Every data gap, and the time they cover (the list names at most the oldest [`LISTED`]).
    pub gaps_total: u64,
    pub time_in_gaps_s: u64,
    pub gaps: Vec<GapView>,
    pub compromised: bool,
    pub compromised_reason: String,
    pub readings_chain_head: String,
    /// Fraction of the product's stability budget used (10⁹ = all), when the
    /// record's profile has one; `null` otherwise.
    pub stability_budget_used_ppb: Option<u64>,
    /// The same as people read it ("37 %"), or `null`.
    pub stability_budget_used: Option<String>,
    /// One entry per logger (per shipment and logger on a lot), sensor family 1.1.
    pub loggers: Vec<LoggerView>,
}

/// One logger's own track in a thermal record.
#[derive(Debug, Serialize)]
pub struct LoggerView {
    /// Empty for the readings a record held before per-logger tracks (1.0).
    pub device_id: String,
    pub shipment_id: String,
    pub reading_count: u64,
    pub min_cdeg: Option<i32>,
    pub max_cdeg: Option<i32>,
    pub mkt_cdeg: Option<i32>,
    pub first_time_s: u64,
    pub last_time_s: u64,
    pub time_above_s: u64,
    pub time_below_s: u64,
    pub warnings: u32,
    pub excursions_total: u64,
    pub gaps_total: u64,
    pub stability_budget_used_ppb: Option<u64>,
    pub compromised: bool,
    pub compromised_reason: String,
    pub readings_chain_head: String,
    pub readings_batches: u64,
}

#[derive(Debug, Serialize)]
pub struct GapView {
    pub device_id: String,
    pub from_s: u64,
    pub to_s: u64,
}

#[derive(Debug, Serialize)]
pub struct ShipmentView {
    pub shipment_id: String,
    pub from_gln: String,
    pub to_gln: String,
    pub status: String,
    pub custodian_org_id: String,
    pub device_ids: Vec<String>,
    pub thermal: Option<ThermalSummary>,
}

/// The whole provenance answer.
#[derive(Debug, Serialize)]
pub struct Provenance {
    pub as_of_block: Option<BlockRef>,
    pub product: Product,
    pub custody: Vec<HandoffView>,
    pub shipments: Vec<ShipmentView>,
    pub thermal: Option<ThermalSummary>,
    pub evidence: Vec<Evidence>,
}

fn snapshot_status(snapshot: Option<&ThermalSnapshot>) -> &'static str {
    match snapshot {
        None => "no_readings",
        Some(s) if s.get_compromised() => "compromised",
        Some(s) if s.get_in_excursion() => "in_excursion",
        Some(s) if s.get_reading_count() == 0 => "no_readings",
        Some(_) => "in_spec",
    }
}

/// One decided (or pending) hand-off as shown to a partner.
pub fn handoff_view(shipment_id: &str, handoff: &Handoff) -> HandoffView {
    let snapshot = handoff.thermal.as_ref();
    let s = snapshot.cloned().unwrap_or_default();
    HandoffView {
        shipment_id: shipment_id.to_string(),
        from_org_id: handoff.get_from_org_id().to_string(),
        to_org_id: handoff.get_to_org_id().to_string(),
        at_gln: handoff.get_at_gln().to_string(),
        proposed_at_s: handoff.get_proposed_at_s(),
        decided_at_s: handoff.get_decided_at_s(),
        outcome: format!("{:?}", handoff.get_outcome()).to_lowercase(),
        reason: handoff.get_reason().to_string(),
        thermal_status: snapshot_status(snapshot),
        reading_count: s.get_reading_count(),
        min_cdeg: s.get_min_cdeg(),
        max_cdeg: s.get_max_cdeg(),
        time_above_s: s.get_time_above_s(),
        time_below_s: s.get_time_below_s(),
    }
}

/// How many closed excursions and gaps a ThermalRecord lists (the sensor
/// family keeps the oldest 100 and counts the rest in its `*_total` fields).
pub const LISTED: usize = 100;

/// Closed excursions of a record, all of them (not only the listed ones). A
/// record written before the totals existed has only the list to go by.
pub fn closed_excursions_total(record: &ThermalRecord) -> u64 {
    record
        .get_excursions_closed_total()
        .max(record.get_closed().len() as u64)
}

/// The listed excursions (closed, then the open one) and gaps of a record.
/// A sensor family 1.1 record lists them on its per-logger tracks only (its
/// own lists summarise); those are gathered here, each naming its logger.
fn listed_excursions_and_gaps(record: &ThermalRecord) -> (Vec<ExcursionView>, Vec<GapView>) {
    let sources: Vec<&ThermalRecord> = if record.get_tracks().is_empty() {
        vec![record]
    } else {
        record.get_tracks().iter().collect()
    };
    let mut excursions = Vec::new();
    let mut gaps = Vec::new();
    for source in sources {
        let logger = |id: &str| {
            if id.is_empty() {
                source.get_device_id().to_string()
            } else {
                id.to_string()
            }
        };
        for e in source.get_closed() {
            excursions.push(ExcursionView {
                device_id: logger(e.get_device_id()),
                high: e.get_high(),
                start_s: e.get_start_s(),
                end_s: Some(e.get_end_s()),
                peak_cdeg: e.get_peak_cdeg(),
                duration_s: e.get_duration_s(),
            });
        }
        if let Some(open) = source.current.as_ref() {
            excursions.push(ExcursionView {
                device_id: logger(open.get_device_id()),
                high: open.get_high(),
                start_s: open.get_start_s(),
                end_s: None,
                peak_cdeg: open.get_peak_cdeg(),
                duration_s: open.get_duration_s(),
            });
        }
        gaps.extend(source.get_gaps().iter().map(|g| GapView {
            device_id: logger(g.get_device_id()),
            from_s: g.get_from_s(),
            to_s: g.get_to_s(),
        }));
    }
    if !record.get_tracks().is_empty() {
        // The record's own gaps: times no logger of a shipment reported.
        gaps.extend(record.get_gaps().iter().map(|g| GapView {
            device_id: String::new(),
            from_s: g.get_from_s(),
            to_s: g.get_to_s(),
        }));
    }
    excursions.sort_by_key(|e| (e.start_s, e.device_id.clone()));
    gaps.sort_by_key(|g| (g.from_s, g.device_id.clone()));
    (excursions, gaps)
}

/// Min, max, MKT, time out of range, excursions and gaps of a thermal record.
pub fn thermal_summary(record: &ThermalRecord) -> ThermalSummary {
    let has = record.get_reading_count() > 0;
    let budget = record
        .profile
        .as_ref()
        .is_some_and(coldchain_processors::thermal::stability::has_budget);
    let (excursions, gaps) = listed_excursions_and_gaps(record);
    ThermalSummary {
        subject: record.get_subject().to_string(),
        reading_count: record.get_reading_count(),
        min_cdeg: has.then(|| record.get_min_cdeg()),
        max_cdeg: has.then(|| record.get_max_cdeg()),
        mkt_cdeg: mkt_cdeg(record),
        first_time_s: record.get_first_time_s(),
        last_time_s: record.get_last_time_s(),
        time_in_range_s: record.get_time_in_range_s(),
        time_out_of_range_s: record.get_time_above_s() + record.get_time_below_s(),
        time_above_s: record.get_time_above_s(),
        time_below_s: record.get_time_below_s(),
        warnings: record.get_warnings(),
        excursions_total: closed_excursions_total(record) + u64::from(record.has_current()),
        excursions,
        gaps_total: record.get_gaps_total().max(record.get_gaps().len() as u64),
        time_in_gaps_s: record.get_time_in_gaps_s(),
        gaps,
        compromised: record.get_compromised(),
        compromised_reason: record.get_compromised_reason().to_string(),
        readings_chain_head: record.get_readings_chain_head().to_string(),
        stability_budget_used_ppb: budget.then(|| record.get_stability_used_ppb()),
        stability_budget_used: budget.then(|| {
            coldchain_processors::thermal::stability::show_used(record.get_stability_used_ppb())
        }),
        loggers: record
            .get_tracks()
            .iter()
            .map(|t| logger_view(t, budget))
            .collect(),
    }
}

fn logger_view(track: &ThermalRecord, budget: bool) -> LoggerView {
    let has = track.get_reading_count() > 0;
    LoggerView {
        device_id: track.get_device_id().to_string(),
        shipment_id: track.get_shipment_id().to_string(),
        reading_count: track.get_reading_count(),
        min_cdeg: has.then(|| track.get_min_cdeg()),
        max_cdeg: has.then(|| track.get_max_cdeg()),
        mkt_cdeg: mkt_cdeg(track),
        first_time_s: track.get_first_time_s(),
        last_time_s: track.get_last_time_s(),
        time_above_s: track.get_time_above_s(),
        time_below_s: track.get_time_below_s(),
        warnings: track.get_warnings(),
        excursions_total: closed_excursions_total(track) + u64::from(track.has_current()),
        gaps_total: track.get_gaps_total().max(track.get_gaps().len() as u64),
        stability_budget_used_ppb: budget.then(|| track.get_stability_used_ppb()),
        compromised: track.get_compromised(),
        compromised_reason: track.get_compromised_reason().to_string(),
        readings_chain_head: track.get_readings_chain_head().to_string(),
        readings_batches: track.get_readings_batches(),
    }
}

fn product_view(lot: &Lot, holder_withheld: bool) -> Product {
    Product {
        gtin: lot.get_gtin().to_string(),
        lot: lot.get_lot().to_string(),
        product_name: lot.get_product_name().to_string(),
        expiry_date: lot.get_expiry_date(),
        quantity: lot.get_quantity(),
        status: format!("{:?}", lot.get_status()).to_lowercase(),
        manufacturer_org_id: lot.get_manufacturer_org_id().to_string(),
        custodian_org_id: lot.get_custodian_org_id().to_string(),
        site_gln: lot.get_site_gln().to_string(),
        holder_withheld,
        profile: profile_view(lot.profile.as_ref().unwrap_or(&StorageProfile::default())),
        status_history: lot
            .get_history()
            .iter()
            .map(|c| StatusStep {
                from: format!("{:?}", c.get_from()).to_lowercase(),
                to: format!("{:?}", c.get_to()).to_lowercase(),
                by_public_key: c.get_by_public_key().to_string(),
                at_s: c.get_at_s(),
                reason: c.get_reason().to_string(),
            })
            .collect(),
    }
}

/// The lot and the shipments that carried it, as read from the index (all of
/// them from [`load_lot`]; [`crate::access::restrict_to_caller`] narrows them).
pub struct LotRecords {
    pub lot: Found<Lot>,
    pub shipments: Vec<Found<Shipment>>,
    /// The lot's current holder and site were blanked for this caller.
    pub holder_withheld: bool,
}

/// Loads the lot and its shipments; `Ok(None)` when the lot is not indexed.
pub async fn load_lot(
    index: &dyn IndexStore,
    gtin14: &str,
    lot: &str,
) -> Result<Option<LotRecords>, ApiError> {
    let Some(found) = load::<Lot>(index, RecordKind::Lot, &goods_key(gtin14, lot)).await? else {
        return Ok(None);
    };
    let mut shipments = Vec::new();
    for shipment_id in index.lot_shipments(&lot_key(gtin14, lot)).await? {
        if let Some(shipment) = load::<Shipment>(index, RecordKind::Shipment, &shipment_id).await? {
            shipments.push(shipment);
        }
    }
    Ok(Some(LotRecords {
        lot: found,
        shipments,
        holder_withheld: false,
    }))
}

/// Builds the provenance of a loaded lot.
pub async fn provenance(
    index: &dyn IndexStore,
    records: &LotRecords,
) -> Result<Provenance, ApiError> {
    let as_of_block = index.head().await?;
    let lot = &records.lot.record;
    let mut evidence = vec![records.lot.evidence.clone()];
    let mut custody = Vec::new();
    let mut shipments = Vec::new();
    for found in &records.shipments {
        let shipment = &found.record;
        evidence.push(found.evidence.clone());
        for handoff in shipment.get_handoffs() {
            custody.push(handoff_view(shipment.get_shipment_id(), handoff));
        }
        if let Some(pending) = shipment
            .pending
            .as_ref()
            .filter(|p| p.get_outcome() == HandoffOutcome::PROPOSED)
        {
            custody.push(handoff_view(shipment.get_shipment_id(), pending));
        }
        let thermal = load::<ThermalRecord>(
            index,
            RecordKind::ShipmentThermal,
            shipment.get_shipment_id(),
        )
        .await?;
        if let Some(t) = &thermal {
            evidence.push(t.evidence.clone());
        }
        shipments.push(ShipmentView {
            shipment_id: shipment.get_shipment_id().to_string(),
            from_gln: shipment.get_from_gln().to_string(),
            to_gln: shipment.get_to_gln().to_string(),
            status: format!("{:?}", shipment.get_status()).to_lowercase(),
            custodian_org_id: shipment.get_custodian_org_id().to_string(),
            device_ids: shipment.get_device_ids().to_vec(),
            thermal: thermal.map(|t| thermal_summary(&t.record)),
        });
    }
    let lot_thermal = load::<ThermalRecord>(
        index,
        RecordKind::GoodsThermal,
        &goods_key(lot.get_gtin(), lot.get_lot()),
    )
    .await?;
    if let Some(t) = &lot_thermal {
        evidence.push(t.evidence.clone());
    }
    Ok(Provenance {
        as_of_block,
        product: product_view(lot, records.holder_withheld),
        custody,
        shipments,
        thermal: lot_thermal.map(|t| thermal_summary(&t.record)),
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_processors::messages::coldchain::{DataGap, Excursion};

    #[test]
    fn summary_counts_excursions_and_gaps_beyond_the_listed_hundred() {
        let mut record = ThermalRecord::new();
        record.set_reading_count(10_000);
        for i in 0..LISTED as u64 {
            let mut e = Excursion::new();
            e.set_start_s(i * 100);
            e.set_end_s(i * 100 + 50);
            record.mut_closed().push(e);
            let mut g = DataGap::new();
            g.set_from_s(i * 100);
            g.set_to_s(i * 100 + 10);
            record.mut_gaps().push(g);
        }
        record.set_excursions_closed_total(130);
        record.set_current(Excursion::new());
        record.set_gaps_total(205);
        record.set_time_in_gaps_s(98_765);
        let summary = thermal_summary(&record);
        assert_eq!(summary.excursions.len(), LISTED + 1);
        assert_eq!(summary.excursions_total, 131);
        assert_eq!(summary.gaps.len(), LISTED);
        assert_eq!(summary.gaps_total, 205);
        assert_eq!(summary.time_in_gaps_s, 98_765);
        // A record from before the totals existed counts its lists.
        let mut old = ThermalRecord::new();
        old.mut_closed().push(Excursion::new());
        old.mut_gaps().push(DataGap::new());
        let summary = thermal_summary(&old);
        assert_eq!((summary.excursions_total, summary.gaps_total), (1, 1));
    }
}
