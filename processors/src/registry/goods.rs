//! Goods: lots (with a Pack record per serial), lot status changes with their
//! history, and blood units.
//!
//! Status rules ([`check_lot_transition`]) are a pure function so the custody
//! and sensor families, the API and the tests all share one table.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::authority::{authorize, has_role, load_own_site};
use super::request::{bad_identifier, emit, invalid, not_before};
use super::{check_text, Signed};
use crate::addressing::{goods_key, RecordKind};
use crate::identifiers::{
    check_date, check_donation_id, check_lot, check_serial, day_of, normalize_gtin,
};
use crate::messages::coldchain::{
    Agent, BloodComponent, BloodUnit, ChangeLotStatus, CreateLot, Lot, LotStatus, Pack,
    RegisterBloodUnit, Role, StatusChange, StorageProfile,
};
use crate::state;

/// Most serials one CreateLot may carry (each becomes a Pack record).
pub const MAX_SERIALS_PER_LOT: usize = 10_000;
/// Temperatures in a profile must lie within ±100 °C.
const PROFILE_LIMIT_CDEG: i32 = 10_000;

/// Checks a storage profile is usable: a name, `min < max` within ±100 °C,
/// hard limits outside the range, an MKT limit inside it, and no half-set flags.
pub fn check_profile(profile: &StorageProfile) -> Result<(), String> {
    if profile.get_name().trim().is_empty() || profile.get_name().len() > 100 {
        return Err("storage profile needs a name of 1-100 characters".into());
    }
    let (min, max) = (profile.get_min_cdeg(), profile.get_max_cdeg());
    if min >= max {
        return Err(format!(
            "storage profile min_cdeg {min} must be below max_cdeg {max}"
        ));
    }
    if min < -PROFILE_LIMIT_CDEG || max > PROFILE_LIMIT_CDEG {
        return Err(format!(
            "storage profile range {min}..{max} (hundredths of a degree) lies outside -100..100 C"
        ));
    }
    if profile.get_has_hard_limits() {
        let (hard_min, hard_max) = (profile.get_hard_min_cdeg(), profile.get_hard_max_cdeg());
        if hard_min > min || hard_max < max {
            return Err(format!(
                "storage profile hard limits {hard_min}..{hard_max} must enclose the range {min}..{max}"
            ));
        }
    } else if profile.get_hard_min_cdeg() != 0 || profile.get_hard_max_cdeg() != 0 {
        return Err("storage profile sets hard limits but has_hard_limits is false".into());
    }
    if profile.get_has_mkt_limit() {
        let mkt = profile.get_mkt_limit_cdeg();
        if mkt < min || mkt > max {
            return Err(format!(
                "storage profile MKT limit {mkt} must lie within the range {min}..{max}"
            ));
        }
    } else if profile.get_mkt_limit_cdeg() != 0 {
        return Err("storage profile sets mkt_limit_cdeg but has_mkt_limit is false".into());
    }
    if let Some(problem) = crate::thermal::stability::profile_problem(profile) {
        return Err(format!("storage profile: {problem}"));
    }
    Ok(())
}

/// Whether a lot may go from `from` to `to` through ChangeLotStatus.
/// COMPROMISED is set only by the sensor family and DISPENSED only by custody.
pub fn check_lot_transition(from: LotStatus, to: LotStatus) -> Result<(), String> {
    use LotStatus::*;
    if from == DESTROYED {
        return Err("the lot is DESTROYED; nothing can change it any more".into());
    }
    if from == to {
        return Err(format!("the lot is already {to:?}"));
    }
    let allowed = match to {
        QUARANTINED => matches!(from, ACTIVE | COMPROMISED),
        ACTIVE => from == QUARANTINED,
        RECALLED => matches!(from, ACTIVE | QUARANTINED | COMPROMISED | DISPENSED),
        DESTROYED => matches!(from, ACTIVE | QUARANTINED | COMPROMISED | RECALLED),
        COMPROMISED => {
            return Err(
                "COMPROMISED is set by the sensor family from the cold-chain record; quarantine the lot instead".into(),
            )
        }
        DISPENSED => {
            return Err("DISPENSED is set when the last pack is dispensed (`coldchain dispense`)".into())
        }
        LOT_STATUS_UNSET => return Err("status is unset; name the new status".into()),
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("a {from:?} lot cannot become {to:?}"))
    }
}

/// Sets `lot`'s status to `to` and appends who/when/why to its history.
pub fn record_status_change(lot: &mut Lot, to: LotStatus, by: &str, at_s: u64, reason: &str) {
    let mut change = StatusChange::new();
    change.set_from(lot.get_status());
    change.set_to(to);
    change.set_by_public_key(by.to_string());
    change.set_at_s(at_s);
    change.set_reason(reason.to_string());
    lot.set_status(to);
    lot.mut_history().push(change);
}

/// For the sensor family: marks an ACTIVE or QUARANTINED lot COMPROMISED (with
/// history) and returns true. A quarantined lot is marked too, so an inspector
/// cannot release it without first seeing the compromise (COMPROMISED →
/// QUARANTINED → ACTIVE is their explicit decision). Recalled, dispensed,
/// destroyed or already compromised lots are left alone and false is returned.
pub fn mark_lot_compromised(lot: &mut Lot, by: &str, at_s: u64, reason: &str) -> bool {
    if !matches!(lot.get_status(), LotStatus::ACTIVE | LotStatus::QUARANTINED) {
        return false;
    }
    record_status_change(lot, LotStatus::COMPROMISED, by, at_s, reason);
    true
}

/// The time of the last thing the chain knows about `lot`.
pub fn lot_last_time(lot: &Lot) -> u64 {
    lot.get_history()
        .last()
        .map_or(lot.get_created_at_s(), |change| change.get_at_s())
        .max(lot.get_created_at_s())
}

pub(super) fn create_lot(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CreateLot,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[Role::MANUFACTURER])?;
    let gtin = normalize_gtin(action.get_gtin()).map_err(bad_identifier)?;
    check_lot(action.get_lot()).map_err(bad_identifier)?;
    check_date(action.get_expiry_date()).map_err(bad_identifier)?;
    let today = day_of(by.now);
    if action.get_expiry_date() < today {
        return Err(invalid(format!(
            "expiry_date {} is before the payload day {today}; an expired lot cannot be registered",
            action.get_expiry_date()
        )));
    }
    let quantity = action.get_quantity();
    if quantity == 0 {
        return Err(invalid(
            "quantity is 0; give the number of packs in the lot",
        ));
    }
    let serials = action.get_serials();
    if serials.len() > MAX_SERIALS_PER_LOT {
        return Err(invalid(format!(
            "{} serials is more than {MAX_SERIALS_PER_LOT} per transaction; split the lot registration",
            serials.len()
        )));
    }
    if serials.len() as u64 > quantity {
        return Err(invalid(format!(
            "{} serials for a quantity of {quantity} packs; there cannot be more serials than packs",
            serials.len()
        )));
    }
    let mut sorted: Vec<&str> = Vec::with_capacity(serials.len());
    for serial in serials {
        check_serial(serial).map_err(bad_identifier)?;
        sorted.push(serial);
    }
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(invalid(format!(
            "serial {} appears twice; serials must be unique",
            pair[0]
        )));
    }
    if !action.has_profile() {
        return Err(invalid(
            "storage profile is missing; give the lot's StorageProfile",
        ));
    }
    check_profile(action.get_profile()).map_err(invalid)?;
    check_text("product_name", action.get_product_name(), 200, true)?;
    load_own_site(context, action.get_site_gln(), agent.get_org_id())?;

    let lot_key = goods_key(&gtin, action.get_lot());
    let lot_address = RecordKind::Lot.address(&lot_key);
    if state::load::<Lot>(context, &lot_address)?.is_some() {
        return Err(invalid(format!(
            "lot {} of GTIN {gtin} already exists; lot numbers are unique per GTIN",
            action.get_lot()
        )));
    }
    let pack_addresses: Vec<String> = serials
        .iter()
        .map(|serial| RecordKind::Pack.address(&goods_key(&gtin, serial)))
        .collect();
    // One state read for all packs: an external TP pays a validator round trip per call.
    let existing = context
        .get_state_entries(&pack_addresses)
        .map_err(|e| ApplyError::InternalError(format!("state read of packs failed: {e}")))?;
    if let Some((address, bytes)) = existing.iter().find(|(_, bytes)| !bytes.is_empty()) {
        let serial = pack_addresses
            .iter()
            .position(|candidate| candidate == address)
            .map_or("?", |index| serials[index].as_str());
        let lot = <Pack as protobuf::Message>::parse_from_bytes(bytes)
            .map(|pack| pack.get_lot().to_string())
            .unwrap_or_default();
        return Err(invalid(format!(
            "pack {gtin}/{serial} already exists in lot {lot}; a serial is unique per GTIN"
        )));
    }
    let mut entries = Vec::with_capacity(serials.len() + 1);
    for (serial, address) in serials.iter().zip(pack_addresses) {
        let mut pack = Pack::new();
        pack.set_gtin(gtin.clone());
        pack.set_serial(serial.clone());
        pack.set_lot(action.get_lot().to_string());
        entries.push((address, state::encode(&pack)?));
    }
    let mut lot = Lot::new();
    lot.set_gtin(gtin);
    lot.set_lot(action.get_lot().to_string());
    lot.set_product_name(action.get_product_name().to_string());
    lot.set_expiry_date(action.get_expiry_date());
    lot.set_quantity(quantity);
    lot.set_serials(serials.to_vec().into());
    lot.set_profile(action.get_profile().clone());
    lot.set_manufacturer_org_id(agent.get_org_id().to_string());
    lot.set_custodian_org_id(agent.get_org_id().to_string());
    lot.set_site_gln(action.get_site_gln().to_string());
    lot.set_created_at_s(by.now);
    record_status_change(&mut lot, LotStatus::ACTIVE, by.signer, by.now, "registered");
    entries.insert(0, (lot_address, state::encode(&lot)?));
    state::store_all(context, entries)
}

/// Whether `agent` may move `lot` to `to` (roles as in `docs/families.md`).
fn check_status_authority(agent: &Agent, lot: &Lot, to: LotStatus) -> Result<(), ApplyError> {
    let regulator = has_role(agent, Role::REGULATOR);
    let (allowed, who) = match to {
        LotStatus::QUARANTINED | LotStatus::ACTIVE => (
            regulator || has_role(agent, Role::INSPECTOR),
            "an INSPECTOR or REGULATOR".to_string(),
        ),
        LotStatus::RECALLED => (
            regulator
                || (has_role(agent, Role::MANUFACTURER)
                    && agent.get_org_id() == lot.get_manufacturer_org_id()),
            format!(
                "a MANUFACTURER agent of {} or a REGULATOR",
                lot.get_manufacturer_org_id()
            ),
        ),
        LotStatus::DESTROYED => (
            regulator || agent.get_org_id() == lot.get_custodian_org_id(),
            format!(
                "an agent of the custodian {} or a REGULATOR",
                lot.get_custodian_org_id()
            ),
        ),
        _ => (false, "nobody".to_string()),
    };
    if allowed {
        Ok(())
    } else {
        Err(invalid(format!(
            "only {who} may set lot {}/{} to {to:?}; signer {} of {} has roles {:?}",
            lot.get_gtin(),
            lot.get_lot(),
            super::authority::short_key(agent.get_public_key()),
            agent.get_org_id(),
            agent.get_roles()
        )))
    }
}

pub(super) fn change_lot_status(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &ChangeLotStatus,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[])?;
    let lot_ref = action.get_lot();
    let gtin = normalize_gtin(lot_ref.get_gtin()).map_err(bad_identifier)?;
    check_lot(lot_ref.get_lot()).map_err(bad_identifier)?;
    check_text("reason", action.get_reason(), 500, true)?;
    let address = RecordKind::Lot.address(&goods_key(&gtin, lot_ref.get_lot()));
    let mut lot: Lot = state::load_required(context, &address, || {
        format!("lot {} of GTIN {gtin} is not registered", lot_ref.get_lot())
    })?;
    let to = action.get_status();
    check_lot_transition(lot.get_status(), to)
        .map_err(|why| invalid(format!("lot {gtin}/{}: {why}", lot_ref.get_lot())))?;
    check_status_authority(&agent, &lot, to)?;
    if to == LotStatus::DESTROYED && !lot.get_shipment_id().is_empty() {
        return Err(invalid(format!(
            "lot {gtin}/{} is in shipment {}; deliver or cancel the shipment before destroying it",
            lot_ref.get_lot(),
            lot.get_shipment_id()
        )));
    }
    not_before(
        by.now,
        lot_last_time(&lot),
        "the lot's last recorded change",
    )?;
    let from = lot.get_status();
    record_status_change(&mut lot, to, by.signer, by.now, action.get_reason());
    state::store(context, address, &lot)?;
    let change = lot.get_history().last().cloned().unwrap_or_default();
    emit(
        context,
        "lot-status",
        &[
            ("gtin", &gtin),
            ("lot", lot_ref.get_lot()),
            ("from", &format!("{from:?}")),
            ("to", &format!("{to:?}")),
        ],
        &state::encode(&change)?,
    )
}

pub(super) fn register_blood_unit(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &RegisterBloodUnit,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[Role::BLOOD_BANK])?;
    check_donation_id(action.get_donation_id()).map_err(bad_identifier)?;
    if action.get_component() == BloodComponent::BLOOD_COMPONENT_UNSET {
        return Err(invalid("component is unset; name the blood component"));
    }
    if action.get_abo() == crate::messages::coldchain::AboGroup::ABO_UNSET
        || action.get_rh() == crate::messages::coldchain::RhD::RH_UNSET
    {
        return Err(invalid(
            "ABO group and RhD must both be set for a blood unit",
        ));
    }
    if !(1..=1_000).contains(&action.get_volume_ml()) {
        return Err(invalid(format!(
            "volume_ml {} must be 1-1000",
            action.get_volume_ml()
        )));
    }
    check_date(action.get_expiry_date()).map_err(bad_identifier)?;
    let today = day_of(by.now);
    if action.get_expiry_date() < today {
        return Err(invalid(format!(
            "expiry_date {} is before the payload day {today}; an expired unit cannot be registered",
            action.get_expiry_date()
        )));
    }
    load_own_site(context, action.get_site_gln(), agent.get_org_id())?;
    let address = RecordKind::BloodUnit.address(action.get_donation_id());
    if state::load::<BloodUnit>(context, &address)?.is_some() {
        return Err(invalid(format!(
            "blood unit {} is already registered",
            action.get_donation_id()
        )));
    }
    let mut unit = BloodUnit::new();
    unit.set_donation_id(action.get_donation_id().to_string());
    unit.set_component(action.get_component());
    unit.set_abo(action.get_abo());
    unit.set_rh(action.get_rh());
    unit.set_volume_ml(action.get_volume_ml());
    unit.set_expiry_date(action.get_expiry_date());
    unit.set_holder_org_id(agent.get_org_id().to_string());
    unit.set_site_gln(action.get_site_gln().to_string());
    unit.set_status(LotStatus::ACTIVE);
    state::store(context, address, &unit)
}
