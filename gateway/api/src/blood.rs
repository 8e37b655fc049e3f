//! The emergency blood board: open requests (most urgent first) and the units
//! that could answer them: active, unexpired, not offered or shipped, cold
//! chain intact, ABO/Rh compatible (rules from `coldchain_processors::blood`).
//!
//! The board reads what a label scanner reads (`coldchain_processors::isbt128`):
//! `unit=` takes a DIN as scanned (`=A99992612345600`), typed with its check
//! character, or as the 13 characters the ledger keys units by; `product=` a
//! scanned product code (`=<E0398V00`) in place of `component=`. Each unit
//! carries its DIN as printed on the label, with the boxed check character.
use std::collections::HashMap;

use coldchain_processors::addressing::RecordKind;
use coldchain_processors::blood::{is_compatible, BloodType};
use coldchain_processors::messages::coldchain::{
    AboGroup, BloodComponent, BloodUnit, EmergencyRequest, LotStatus, RequestStatus, RhD,
    ThermalRecord,
};
use serde::Serialize;

use crate::error::ApiError;
use crate::index::IndexStore;
use crate::records::{load, load_all, Evidence};

/// Most records of one kind the board reads at once.
const BOARD_LIMIT: u32 = 10_000;

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub request_id: String,
    pub component: String,
    pub blood_type: String,
    pub units: u32,
    pub priority: String,
    pub needed_by_s: u64,
    pub hospital_org_id: String,
    pub hospital_gln: String,
    pub status: String,
    pub offers: usize,
    pub evidence: Evidence,
}

fn name<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}").to_lowercase()
}

/// Requests still open or with units on their way, most urgent first.
pub async fn open_requests(index: &dyn IndexStore) -> Result<Vec<RequestView>, ApiError> {
    let mut requests: Vec<_> =
        load_all::<EmergencyRequest>(index, RecordKind::EmergencyRequest, BOARD_LIMIT)
            .await?
            .into_iter()
            .filter(|r| {
                matches!(
                    r.record.get_status(),
                    RequestStatus::OPEN | RequestStatus::OFFER_ACCEPTED
                )
            })
            .collect();
    requests.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.record.get_priority() as i32),
            r.record.get_needed_by_s(),
        )
    });
    Ok(requests
        .into_iter()
        .map(|found| {
            let r = &found.record;
            RequestView {
                request_id: r.get_request_id().to_string(),
                component: name(r.get_component()),
                blood_type: BloodType::new(r.get_abo(), r.get_rh()).to_string(),
                units: r.get_units(),
                priority: name(r.get_priority()),
                needed_by_s: r.get_needed_by_s(),
                hospital_org_id: r.get_hospital_org_id().to_string(),
                hospital_gln: r.get_hospital_gln().to_string(),
                status: name(r.get_status()),
                offers: r.get_offer_ids().len(),
                evidence: found.evidence,
            }
        })
        .collect())
}

/// What the board is asked for.
#[derive(Clone, Debug, Default)]
pub struct UnitFilter {
    pub component: Option<BloodComponent>,
    /// The patient's type: only compatible units are listed.
    pub patient: Option<BloodType>,
    pub site_gln: Option<String>,
    /// One unit, by its 13-character DIN.
    pub donation_id: Option<String>,
}

fn bad(name: &str, value: &str, allowed: &str) -> ApiError {
    ApiError::bad_request(
        "bad_parameter",
        format!(
            "{name}={:?} must be one of {allowed}",
            crate::identifiers::shorten(value)
        ),
    )
}

impl UnitFilter {
    /// From `component=red_cells&abo=A&rh=+&site=…&unit=…&product=…` (all
    /// optional; abo and rh together; `product` instead of or agreeing with `component`).
    /// Components may be spelt as the CLI spells them too (`red-cells`,
    /// `whole-blood`, `plasma`, `cryo`), so a name copied from one works in the other.
    pub fn from_query(query: &HashMap<String, String>) -> Result<UnitFilter, ApiError> {
        let component =
            match query.get("component").map(|c| c.to_ascii_lowercase().replace('-', "_")) {
                None => None,
                Some(c) => Some(match c.as_str() {
                    "red_cells" => BloodComponent::RED_CELLS,
                    "whole_blood" => BloodComponent::WHOLE_BLOOD,
                    "platelets" => BloodComponent::PLATELETS,
                    "fresh_frozen_plasma" | "plasma" => BloodComponent::FRESH_FROZEN_PLASMA,
                    "cryoprecipitate" | "cryo" => BloodComponent::CRYOPRECIPITATE,
                    _ => return Err(bad(
                        "component",
                        &c,
                        "red_cells, whole_blood, platelets, fresh_frozen_plasma, cryoprecipitate (or as the CLI spells them: red-cells, whole-blood, plasma, cryo)",
                    )),
                }),
            };
        let component = match query.get("product") {
            None => component,
            Some(scan) => {
                let product = coldchain_processors::isbt128::parse_product_code(scan)
                    .map_err(|e| ApiError::bad_request("bad_parameter", format!("product: {e}")))?;
                if component.is_some_and(|c| c != product.component) {
                    return Err(ApiError::bad_request(
                        "bad_parameter",
                        format!(
                            "product={} is {} but component= names another component; give one of them",
                            product.code,
                            name(product.component)
                        ),
                    ));
                }
                Some(product.component)
            }
        };
        let donation_id = match query.get("unit") {
            None => None,
            Some(text) => Some(ledger_din(text)?),
        };
        let abo = match query.get("abo").map(|a| a.to_ascii_uppercase()) {
            None => None,
            Some(a) => Some(match a.as_str() {
                "O" => AboGroup::O,
                "A" => AboGroup::A,
                "B" => AboGroup::B,
                "AB" => AboGroup::AB,
                _ => return Err(bad("abo", &a, "O, A, B, AB")),
            }),
        };
        let rh = match query.get("rh").map(String::as_str) {
            None => None,
            Some("+" | " " | "pos" | "positive") => Some(RhD::POSITIVE),
            Some("-" | "neg" | "negative") => Some(RhD::NEGATIVE),
            Some(other) => return Err(bad("rh", other, "+, -")),
        };
        let patient = match (abo, rh) {
            (Some(abo), Some(rh)) => Some(BloodType::new(abo, rh)),
            (None, None) => None,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_parameter",
                    "give abo and rh together".into(),
                ))
            }
        };
        if patient.is_some() && component.is_none() {
            return Err(ApiError::bad_request(
                "bad_parameter",
                "compatibility depends on the component: give component= too".into(),
            ));
        }
        let site_gln = query.get("site").cloned();
        if let Some(site) = &site_gln {
            if site.len() != 13 || !site.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("site", site, "a 13-digit GLN"));
            }
        }
        Ok(UnitFilter {
            component,
            patient,
            site_gln,
            donation_id,
        })
    }
}

/// The ledger's 13-character DIN of a scanned or typed one (ids registered
/// before scans were read, facility code any 5 of `A-Z 0-9`, pass unchanged).
pub fn ledger_din(text: &str) -> Result<String, ApiError> {
    use coldchain_processors::{identifiers, isbt128};
    match isbt128::parse_donation_number(text) {
        Ok(number) => Ok(number.din),
        Err(_) if identifiers::check_donation_id(text).is_ok() => Ok(text.to_string()),
        Err(e) => Err(ApiError::bad_request("bad_parameter", format!("unit: {e}"))),
    }
}

#[derive(Debug, Serialize)]
pub struct UnitView {
    pub donation_id: String,
    /// The DIN as printed under its bar code, with the boxed ISO 7064
    /// MOD 37-2 check character: `A9999 26 123456 [T]`.
    pub din_label: String,
    /// That check character alone (what a person types after the 13 characters).
    pub check_character: String,
    pub component: String,
    pub blood_type: String,
    pub volume_ml: u32,
    pub expiry_date: u32,
    pub holder_org_id: String,
    pub site_gln: String,
    pub evidence: Evidence,
}

/// Pure availability rule for one unit (thermal record of the unit, if any).
pub fn is_available(
    unit: &BloodUnit,
    thermal: Option<&ThermalRecord>,
    filter: &UnitFilter,
    today: u32,
) -> bool {
    let basic = unit.get_status() == LotStatus::ACTIVE
        && unit.get_offered_in().is_empty()
        && unit.get_shipment_id().is_empty()
        && !unit.get_transfused_or_delivered()
        && unit.get_expiry_date() >= today
        && !thermal.is_some_and(|t| t.get_compromised());
    let component = filter.component.is_none_or(|c| c == unit.get_component());
    let site = filter
        .site_gln
        .as_deref()
        .is_none_or(|s| s == unit.get_site_gln());
    let named = filter
        .donation_id
        .as_deref()
        .is_none_or(|d| d == unit.get_donation_id());
    let compatible = match (filter.patient, filter.component) {
        (Some(patient), Some(component)) => is_compatible(
            component,
            BloodType::new(unit.get_abo(), unit.get_rh()),
            patient,
        ),
        _ => true,
    };
    basic && component && site && named && compatible
}

/// Units that could be offered now, soonest expiry first.
pub async fn available_units(
    index: &dyn IndexStore,
    filter: &UnitFilter,
    today: u32,
) -> Result<Vec<UnitView>, ApiError> {
    let mut out = Vec::new();
    for found in load_all::<BloodUnit>(index, RecordKind::BloodUnit, BOARD_LIMIT).await? {
        let unit = &found.record;
        let thermal =
            load::<ThermalRecord>(index, RecordKind::GoodsThermal, unit.get_donation_id()).await?;
        if !is_available(unit, thermal.as_ref().map(|t| &t.record), filter, today) {
            continue;
        }
        let din = unit.get_donation_id();
        let din_label = coldchain_processors::isbt128::din_label_text(din).unwrap_or_default();
        let check_character = coldchain_processors::isbt128::din_check_character(din)
            .map(String::from)
            .unwrap_or_default();
        out.push(UnitView {
            donation_id: din.to_string(),
            din_label,
            check_character,
            component: name(unit.get_component()),
            blood_type: BloodType::new(unit.get_abo(), unit.get_rh()).to_string(),
            volume_ml: unit.get_volume_ml(),
            expiry_date: unit.get_expiry_date(),
            holder_org_id: unit.get_holder_org_id().to_string(),
            site_gln: unit.get_site_gln().to_string(),
            evidence: found.evidence,
        });
    }
    out.sort_by_key(|u| u.expiry_date);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(abo: AboGroup, rh: RhD) -> BloodUnit {
        let mut unit = BloodUnit::new();
        unit.set_donation_id("A999926123456".into());
        unit.set_component(BloodComponent::RED_CELLS);
        unit.set_abo(abo);
        unit.set_rh(rh);
        unit.set_expiry_date(20300101);
        unit.set_status(LotStatus::ACTIVE);
        unit
    }

    fn filter(abo: &str, rh: &str) -> UnitFilter {
        let query: HashMap<String, String> = [("component", "red_cells"), ("abo", abo), ("rh", rh)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        UnitFilter::from_query(&query).unwrap()
    }

    #[test]
    fn o_negative_red_cells_serve_an_ab_positive_patient_but_not_the_reverse() {
        assert!(is_available(
            &unit(AboGroup::O, RhD::NEGATIVE),
            None,
            &filter("AB", "+"),
            20270101
        ));
        assert!(!is_available(
            &unit(AboGroup::AB, RhD::POSITIVE),
            None,
            &filter("O", "-"),
            20270101
        ));
    }

    #[test]
    fn offered_expired_or_thermally_compromised_units_are_not_available() {
        let f = filter("O", "-");
        let mut offered = unit(AboGroup::O, RhD::NEGATIVE);
        offered.set_offered_in("offer-1".into());
        assert!(!is_available(&offered, None, &f, 20270101));
        assert!(!is_available(
            &unit(AboGroup::O, RhD::NEGATIVE),
            None,
            &f,
            20300102
        ));
        let mut thermal = ThermalRecord::new();
        thermal.set_compromised(true);
        assert!(!is_available(
            &unit(AboGroup::O, RhD::NEGATIVE),
            Some(&thermal),
            &f,
            20270101
        ));
    }

    #[test]
    fn components_are_accepted_as_the_cli_spells_them() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        for (spelling, component) in [
            ("red-cells", BloodComponent::RED_CELLS),
            ("red_cells", BloodComponent::RED_CELLS),
            ("Whole-Blood", BloodComponent::WHOLE_BLOOD),
            ("fresh-frozen-plasma", BloodComponent::FRESH_FROZEN_PLASMA),
            ("plasma", BloodComponent::FRESH_FROZEN_PLASMA),
            ("cryo", BloodComponent::CRYOPRECIPITATE),
        ] {
            let filter = UnitFilter::from_query(&q(&[("component", spelling)])).unwrap();
            assert_eq!(filter.component, Some(component), "{spelling}");
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_scanned_din_finds_its_unit_whatever_form_it_takes() {
        let o_neg = unit(AboGroup::O, RhD::NEGATIVE);
        for scan in [
            "=A99992612345600",
            "A999926123456",
            "A999926123456T",
            "A9999 26 123456 00 T",
        ] {
            let filter = UnitFilter::from_query(&query(&[("unit", scan)])).unwrap();
            assert_eq!(filter.donation_id.as_deref(), Some("A999926123456"));
            assert!(is_available(&o_neg, None, &filter, 20270101), "{scan}");
        }
        let other = UnitFilter::from_query(&query(&[("unit", "=A99992612345700")])).unwrap();
        assert!(!is_available(&o_neg, None, &other, 20270101));
    }

    #[test]
    fn a_din_with_a_wrong_check_character_is_a_bad_request() {
        let err = UnitFilter::from_query(&query(&[("unit", "A999926123456K")])).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.contains("MOD 37-2 gives 'T'"),
            "{}",
            err.message
        );
        let err = UnitFilter::from_query(&query(&[("unit", "=A99992612345688")])).unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn a_scanned_product_code_names_the_component() {
        let filter = UnitFilter::from_query(&query(&[
            ("product", "=<E0398V00"),
            ("abo", "AB"),
            ("rh", "+"),
        ]))
        .unwrap();
        assert_eq!(filter.component, Some(BloodComponent::RED_CELLS));
        let agree = UnitFilter::from_query(&query(&[
            ("product", "=<E0701V00"),
            ("component", "plasma"),
        ]))
        .unwrap();
        assert_eq!(agree.component, Some(BloodComponent::FRESH_FROZEN_PLASMA));
        let err = UnitFilter::from_query(&query(&[
            ("product", "=<E0398V00"),
            ("component", "platelets"),
        ]))
        .unwrap_err();
        assert!(err.message.contains("another component"), "{}", err.message);
        let err = UnitFilter::from_query(&query(&[("product", "=<E9999V00")])).unwrap_err();
        assert!(
            err.message.contains("give the component by name"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_component_or_half_a_blood_type_is_a_bad_request() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(UnitFilter::from_query(&q(&[("component", "plasma??")])).is_err());
        assert!(UnitFilter::from_query(&q(&[("component", "red_cells"), ("abo", "A")])).is_err());
        assert!(UnitFilter::from_query(&q(&[("abo", "A"), ("rh", "+")])).is_err());
    }
}
