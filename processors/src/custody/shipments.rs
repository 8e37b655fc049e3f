//! Shipments: creation (the signer's organisation must hold every lot and
//! unit), cancellation, and attaching or detaching temperature loggers.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use super::{
    load_shipment, load_shipment_lots, load_shipment_units, lot_address, shipment_last_time,
};
use crate::addressing::RecordKind;
use crate::blood;
use crate::identifiers::{check_donation_id, check_lot, check_record_id, day_of, normalize_gtin};
use crate::messages::coldchain::{
    AttachDevice, BloodUnit, CancelShipment, CreateShipment, DetachDevice, Device,
    EmergencyRequest, Lot, LotRef, LotStatus, RequestStatus, Shipment, ShipmentStatus,
    StorageProfile,
};
use crate::registry::goods::lot_last_time;
use crate::registry::request::{bad_identifier, emit, invalid, not_before};
use crate::registry::{
    authorize, check_profile, check_text, load_own_site, load_site, require_active_agent, Signed,
};
use crate::state;

/// Most lots plus blood units in one shipment.
pub const MAX_GOODS_PER_SHIPMENT: usize = 1_000;

/// The strictest profile satisfying all of `profiles`: the narrowest range,
/// the shortest allowances, the lowest MKT limit, the tightest hard limits.
/// `Err` when the ranges do not overlap.
pub fn strictest_profile(profiles: &[StorageProfile]) -> Result<StorageProfile, String> {
    let Some(first) = profiles.first() else {
        return Err("no profile to combine".into());
    };
    let mut combined = first.clone();
    for profile in &profiles[1..] {
        if profile == &combined {
            continue;
        }
        combined.set_name(format!("{} + {}", combined.get_name(), profile.get_name()));
        combined.set_min_cdeg(combined.get_min_cdeg().max(profile.get_min_cdeg()));
        combined.set_max_cdeg(combined.get_max_cdeg().min(profile.get_max_cdeg()));
        combined.set_max_single_high_s(
            combined
                .get_max_single_high_s()
                .min(profile.get_max_single_high_s()),
        );
        combined.set_max_single_low_s(
            combined
                .get_max_single_low_s()
                .min(profile.get_max_single_low_s()),
        );
        combined.set_max_cumulative_high_s(
            combined
                .get_max_cumulative_high_s()
                .min(profile.get_max_cumulative_high_s()),
        );
        combined.set_max_cumulative_low_s(
            combined
                .get_max_cumulative_low_s()
                .min(profile.get_max_cumulative_low_s()),
        );
        // Zero means "no limit" for warnings and gaps: the smallest non-zero wins.
        combined.set_max_warnings(min_nonzero(
            combined.get_max_warnings().into(),
            profile.get_max_warnings().into(),
        ) as u32);
        combined.set_max_gap_s(min_nonzero(
            combined.get_max_gap_s(),
            profile.get_max_gap_s(),
        ));
        if profile.get_has_mkt_limit() {
            let mkt = if combined.get_has_mkt_limit() {
                combined
                    .get_mkt_limit_cdeg()
                    .min(profile.get_mkt_limit_cdeg())
            } else {
                profile.get_mkt_limit_cdeg()
            };
            combined.set_has_mkt_limit(true);
            combined.set_mkt_limit_cdeg(mkt);
        }
        if profile.get_has_hard_limits() {
            let (lo, hi) = if combined.get_has_hard_limits() {
                (
                    combined
                        .get_hard_min_cdeg()
                        .max(profile.get_hard_min_cdeg()),
                    combined
                        .get_hard_max_cdeg()
                        .min(profile.get_hard_max_cdeg()),
                )
            } else {
                (profile.get_hard_min_cdeg(), profile.get_hard_max_cdeg())
            };
            combined.set_has_hard_limits(true);
            combined.set_hard_min_cdeg(lo);
            combined.set_hard_max_cdeg(hi);
        }
    }
    if combined.get_name().len() > 100 {
        combined.set_name("strictest of the shipment's goods".into());
    }
    // A stability budget belongs to a product: the lots' records use it up
    // (per shipment, in their tracks); the transport profile has none.
    combined.stability_bands.clear();
    combined.clear_stability_arrhenius();
    if combined.get_has_mkt_limit() {
        let clamped = combined.get_mkt_limit_cdeg().clamp(
            combined.get_min_cdeg(),
            combined.get_max_cdeg().max(combined.get_min_cdeg()),
        );
        combined.set_mkt_limit_cdeg(clamped);
    }
    check_profile(&combined)?;
    Ok(combined)
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn check_lot_shippable(lot: &Lot, org_id: &str, from_gln: &str) -> Result<(), String> {
    let name = format!("lot {}/{}", lot.get_gtin(), lot.get_lot());
    if lot.get_custodian_org_id() != org_id {
        return Err(format!(
            "{name} is in the custody of {}, not {org_id}; only the custodian ships it",
            lot.get_custodian_org_id()
        ));
    }
    if matches!(
        lot.get_status(),
        LotStatus::RECALLED | LotStatus::DESTROYED | LotStatus::DISPENSED
    ) {
        return Err(format!(
            "{name} is {:?} and cannot be shipped",
            lot.get_status()
        ));
    }
    if !lot.get_shipment_id().is_empty() {
        return Err(format!(
            "{name} is already in shipment {}; deliver or cancel that shipment first",
            lot.get_shipment_id()
        ));
    }
    if lot.get_site_gln() != from_gln {
        return Err(format!(
            "{name} is at site {}, not at from_gln {from_gln}",
            lot.get_site_gln()
        ));
    }
    Ok(())
}

fn check_unit_shippable(
    unit: &BloodUnit,
    org_id: &str,
    from_gln: &str,
    today: u32,
) -> Result<(), String> {
    let name = format!("blood unit {}", unit.get_donation_id());
    if unit.get_holder_org_id() != org_id {
        return Err(format!(
            "{name} is held by {}, not {org_id}; only the holder ships it",
            unit.get_holder_org_id()
        ));
    }
    if matches!(
        unit.get_status(),
        LotStatus::RECALLED | LotStatus::DESTROYED | LotStatus::DISPENSED
    ) || unit.get_transfused_or_delivered()
    {
        return Err(format!(
            "{name} is out of circulation ({:?})",
            unit.get_status()
        ));
    }
    if !unit.get_offered_in().is_empty() {
        return Err(format!(
            "{name} is offered in blood offer {}; it ships when that offer is accepted",
            unit.get_offered_in()
        ));
    }
    if !unit.get_shipment_id().is_empty() {
        return Err(format!(
            "{name} is already in shipment {}",
            unit.get_shipment_id()
        ));
    }
    if unit.get_site_gln() != from_gln {
        return Err(format!(
            "{name} is at site {}, not at from_gln {from_gln}",
            unit.get_site_gln()
        ));
    }
    if unit.get_expiry_date() < today {
        return Err(format!("{name} expired on {}", unit.get_expiry_date()));
    }
    Ok(())
}

/// True when `org_id` holds every lot and unit listed by `action` at its `from_gln`.
fn holds_all_at_origin(
    context: &dyn TransactionContext,
    action: &CreateShipment,
    org_id: &str,
) -> Result<bool, ApplyError> {
    let from = action.get_from_gln();
    for lot_ref in action.get_lots() {
        let Ok(gtin) = normalize_gtin(lot_ref.get_gtin()) else {
            return Ok(false);
        };
        let mut clean = LotRef::new();
        clean.set_gtin(gtin);
        clean.set_lot(lot_ref.get_lot().to_string());
        match state::load::<Lot>(context, &lot_address(&clean))? {
            Some(lot) if lot.get_custodian_org_id() == org_id && lot.get_site_gln() == from => {}
            _ => return Ok(false),
        }
    }
    for donation_id in action.get_blood_units() {
        match state::load::<BloodUnit>(context, &RecordKind::BloodUnit.address(donation_id))? {
            Some(unit) if unit.get_holder_org_id() == org_id && unit.get_site_gln() == from => {}
            _ => return Ok(false),
        }
    }
    Ok(!action.get_lots().is_empty() || !action.get_blood_units().is_empty())
}

pub(super) fn create_shipment(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CreateShipment,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[])?;
    let org_id = agent.get_org_id().to_string();
    let shipment_id = action.get_shipment_id();
    check_record_id("shipment id", shipment_id).map_err(bad_identifier)?;
    let address = RecordKind::Shipment.address(shipment_id);
    if state::load::<Shipment>(context, &address)?.is_some() {
        return Err(invalid(format!(
            "shipment {shipment_id} already exists; choose another shipment id"
        )));
    }
    let origin = load_site(context, action.get_from_gln())?;
    if origin.get_org_id() != org_id && !holds_all_at_origin(context, action, &org_id)? {
        // Usually goods ship from the holder's own site; goods the holder was
        // handed at another organisation's dock (and kept there after a
        // cancellation) ship from that dock, or they could never move again.
        load_own_site(context, action.get_from_gln(), &org_id)?;
    }
    load_site(context, action.get_to_gln())?;
    if action.get_from_gln() == action.get_to_gln() {
        return Err(invalid(format!(
            "from_gln and to_gln are both {}; a shipment goes from one site to another",
            action.get_to_gln()
        )));
    }
    let count = action.get_lots().len() + action.get_blood_units().len();
    if count == 0 {
        return Err(invalid(
            "the shipment lists no lots and no blood units; name what it carries",
        ));
    }
    if count > MAX_GOODS_PER_SHIPMENT {
        return Err(invalid(format!(
            "{count} lots and units is more than {MAX_GOODS_PER_SHIPMENT} per shipment; split it"
        )));
    }
    let today = crate::identifiers::day_of(by.now);
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(count + 1);
    let mut lot_refs = Vec::with_capacity(action.get_lots().len());
    let mut profiles = Vec::new();
    for lot_ref in action.get_lots() {
        let gtin = normalize_gtin(lot_ref.get_gtin()).map_err(bad_identifier)?;
        check_lot(lot_ref.get_lot()).map_err(bad_identifier)?;
        let mut clean = LotRef::new();
        clean.set_gtin(gtin.clone());
        clean.set_lot(lot_ref.get_lot().to_string());
        if lot_refs.contains(&clean) {
            return Err(invalid(format!(
                "lot {gtin}/{} is listed twice",
                lot_ref.get_lot()
            )));
        }
        let lot_address = lot_address(&clean);
        let mut lot: Lot = state::load_required(context, &lot_address, || {
            format!("lot {}/{} is not registered", gtin, lot_ref.get_lot())
        })?;
        check_lot_shippable(&lot, &org_id, action.get_from_gln()).map_err(invalid)?;
        not_before(
            by.now,
            lot_last_time(&lot),
            "the lot's last recorded change",
        )?;
        profiles.push(lot.get_profile().clone());
        lot.set_shipment_id(shipment_id.to_string());
        entries.push((lot_address, state::encode(&lot)?));
        lot_refs.push(clean);
    }
    let mut donation_ids: Vec<String> = Vec::with_capacity(action.get_blood_units().len());
    for donation_id in action.get_blood_units() {
        check_donation_id(donation_id).map_err(bad_identifier)?;
        if donation_ids.contains(donation_id) {
            return Err(invalid(format!("blood unit {donation_id} is listed twice")));
        }
        let unit_address = RecordKind::BloodUnit.address(donation_id);
        let mut unit: BloodUnit = state::load_required(context, &unit_address, || {
            format!("blood unit {donation_id} is not registered")
        })?;
        check_unit_shippable(&unit, &org_id, action.get_from_gln(), today).map_err(invalid)?;
        profiles.extend(blood::transport_profile(unit.get_component()));
        unit.set_shipment_id(shipment_id.to_string());
        entries.push((unit_address, state::encode(&unit)?));
        donation_ids.push(donation_id.clone());
    }
    let profile = if action.has_profile() {
        check_profile(action.get_profile()).map_err(invalid)?;
        action.get_profile().clone()
    } else {
        strictest_profile(&profiles).map_err(|why| {
            invalid(format!(
                "the goods need storage ranges that do not overlap ({why}); ship them separately or give an explicit transport profile"
            ))
        })?
    };
    let mut shipment = Shipment::new();
    shipment.set_shipment_id(shipment_id.to_string());
    shipment.set_from_gln(action.get_from_gln().to_string());
    shipment.set_to_gln(action.get_to_gln().to_string());
    shipment.set_lots(lot_refs.into());
    shipment.set_blood_units(donation_ids.into());
    shipment.set_profile(profile);
    shipment.set_status(ShipmentStatus::PREPARING);
    shipment.set_custodian_org_id(org_id);
    shipment.set_created_by(by.signer.to_string());
    shipment.set_created_at_s(by.now);
    entries.insert(0, (address, state::encode(&shipment)?));
    state::store_all(context, entries)?;
    emit(
        context,
        "shipment-created",
        &[
            ("shipment_id", shipment_id),
            ("from_gln", action.get_from_gln()),
            ("to_gln", action.get_to_gln()),
        ],
        &[],
    )
}

/// Closes `shipment` as `status` (DELIVERED or CANCELLED) by `by` at its
/// time: detaches every logger still attached to it (their records go into
/// `entries`; `shipment.device_ids` keeps the list as a record) and notes
/// when and by whom it was closed. The caller writes the shipment.
pub(super) fn close_shipment(
    context: &mut dyn TransactionContext,
    shipment: &mut Shipment,
    status: ShipmentStatus,
    by: &Signed,
    entries: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ApplyError> {
    detach_all_devices(context, shipment, entries)?;
    shipment.set_status(status);
    shipment.set_closed_at_s(by.now);
    shipment.set_closed_by(by.signer.to_string());
    Ok(())
}

fn detach_all_devices(
    context: &mut dyn TransactionContext,
    shipment: &Shipment,
    entries: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ApplyError> {
    let id = shipment.get_shipment_id();
    for device_id in shipment.get_device_ids() {
        let address = RecordKind::Device.address(device_id);
        if let Some(mut device) = state::load::<Device>(context, &address)? {
            if device.get_attached_shipment_id() == id {
                device.clear_attached_shipment_id();
                entries.push((address, state::encode(&device)?));
            }
        }
    }
    Ok(())
}

pub(super) fn cancel_shipment(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &CancelShipment,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    authorize(
        context,
        by.signer,
        Some(shipment.get_custodian_org_id()),
        &[],
    )?;
    check_text("reason", action.get_reason(), 500, true)?;
    match shipment.get_status() {
        ShipmentStatus::PREPARING | ShipmentStatus::IN_TRANSIT | ShipmentStatus::REFUSED => {}
        ShipmentStatus::HANDOFF_PENDING => {
            return Err(invalid(format!(
                "shipment {id} has a pending hand-off to {}; withdraw it first (`coldchain shipment cancel --id {id}`), or let them decide",
                shipment.get_pending().get_to_org_id()
            )))
        }
        status => {
            return Err(invalid(format!(
                "shipment {id} is {status:?}; only an open shipment can be cancelled"
            )))
        }
    }
    if !shipment.get_blood_request_id().is_empty() {
        // Closed by delivery while the hospital still wants it; once the
        // hospital has withdrawn the request, the bank ends the shipment.
        let request_id = shipment.get_blood_request_id();
        let request: Option<EmergencyRequest> =
            state::load(context, &RecordKind::EmergencyRequest.address(request_id))?;
        if request.is_none_or(|r| r.get_status() != RequestStatus::REQUEST_CANCELLED) {
            return Err(invalid(format!(
                "shipment {id} carries blood for emergency request {request_id}; it is closed by delivery, not cancelled (`coldchain shipment propose` to the hospital, `coldchain blood deliver`), unless the hospital withdraws the request first (`coldchain blood cancel --request {request_id} --reason …`)"
            )));
        }
    }
    not_before(
        by.now,
        shipment_last_time(&shipment),
        "the shipment's last event",
    )?;
    let mut entries = Vec::new();
    for (address, mut lot) in load_shipment_lots(context, &shipment)? {
        lot.clear_shipment_id();
        entries.push((address, state::encode(&lot)?));
    }
    for (address, mut unit) in load_shipment_units(context, &shipment)? {
        unit.clear_shipment_id();
        entries.push((address, state::encode(&unit)?));
    }
    close_shipment(
        context,
        &mut shipment,
        ShipmentStatus::CANCELLED,
        &by,
        &mut entries,
    )?;
    entries.insert(
        0,
        (RecordKind::Shipment.address(id), state::encode(&shipment)?),
    );
    state::store_all(context, entries)?;
    emit(
        context,
        "shipment-cancelled",
        &[("shipment_id", id), ("reason", action.get_reason())],
        &[],
    )
}

fn load_device(context: &dyn TransactionContext, device_id: &str) -> Result<Device, ApplyError> {
    state::load_required(context, &RecordKind::Device.address(device_id), || {
        format!(
            "device {device_id} is not registered; register it first (`coldchain device register`)"
        )
    })
}

/// The signer must be an agent of the device's organisation or of the custodian.
fn authorize_device_handling(
    context: &dyn TransactionContext,
    signer: &str,
    device: &Device,
    shipment: &Shipment,
) -> Result<(), ApplyError> {
    let agent = authorize(context, signer, None, &[])?;
    if agent.get_org_id() == device.get_org_id()
        || agent.get_org_id() == shipment.get_custodian_org_id()
    {
        return Ok(());
    }
    Err(invalid(format!(
        "signer's organisation {} neither owns device {} ({}) nor holds shipment {} ({})",
        agent.get_org_id(),
        device.get_device_id(),
        device.get_org_id(),
        shipment.get_shipment_id(),
        shipment.get_custodian_org_id()
    )))
}

pub(super) fn attach_device(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &AttachDevice,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    let mut device = load_device(context, action.get_device_id())?;
    authorize_device_handling(context, by.signer, &device, &shipment)?;
    if matches!(
        shipment.get_status(),
        ShipmentStatus::DELIVERED | ShipmentStatus::CANCELLED
    ) {
        return Err(invalid(format!(
            "shipment {id} is {:?}; loggers attach to open shipments only",
            shipment.get_status()
        )));
    }
    if device.get_revoked() {
        return Err(invalid(format!(
            "device {} is revoked and cannot be attached",
            device.get_device_id()
        )));
    }
    if !device.get_attached_shipment_id().is_empty() {
        return Err(invalid(format!(
            "device {} is already attached to shipment {}; detach it first",
            device.get_device_id(),
            device.get_attached_shipment_id()
        )));
    }
    let due = device.get_calibration_due_date();
    let today = day_of(by.now);
    if due != 0 && due < today {
        return Err(invalid(format!(
            "device {} was due for calibration on {due} (today is {today}); recalibrate it and register the new due date",
            device.get_device_id()
        )));
    }
    not_before(
        by.now,
        shipment_last_time(&shipment),
        "the shipment's last event",
    )?;
    device.set_attached_shipment_id(id.to_string());
    if !shipment
        .get_device_ids()
        .contains(&action.get_device_id().to_string())
    {
        shipment
            .mut_device_ids()
            .push(action.get_device_id().to_string());
    }
    state::store_all(
        context,
        vec![
            (RecordKind::Shipment.address(id), state::encode(&shipment)?),
            (
                RecordKind::Device.address(action.get_device_id()),
                state::encode(&device)?,
            ),
        ],
    )
}

pub(super) fn detach_device(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &DetachDevice,
) -> Result<(), ApplyError> {
    require_active_agent(context, by.signer)?;
    let id = action.get_shipment_id();
    let mut shipment = load_shipment(context, id)?;
    let mut device = load_device(context, action.get_device_id())?;
    authorize_device_handling(context, by.signer, &device, &shipment)?;
    if device.get_attached_shipment_id() != id {
        return Err(invalid(format!(
            "device {} is not attached to shipment {id}",
            device.get_device_id()
        )));
    }
    not_before(
        by.now,
        shipment_last_time(&shipment),
        "the shipment's last event",
    )?;
    device.clear_attached_shipment_id();
    shipment
        .mut_device_ids()
        .retain(|device_id| device_id != action.get_device_id());
    state::store_all(
        context,
        vec![
            (RecordKind::Shipment.address(id), state::encode(&shipment)?),
            (
                RecordKind::Device.address(action.get_device_id()),
                state::encode(&device)?,
            ),
        ],
    )
}
