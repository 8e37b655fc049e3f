//! Dispensing: a PHARMACY agent of the lot's custodian records that a
//! serialised pack left the supply chain at one of its sites.
//!
//! A pack is dispensed at most once; only an ACTIVE lot at rest (not in a
//! shipment) and not expired on the payload day may be dispensed from. When the
//! lot's last pack goes, the lot becomes DISPENSED.
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext};

use crate::addressing::{goods_key, RecordKind};
use crate::identifiers::{check_serial, day_of, normalize_gtin};
use crate::messages::coldchain::{DispensePack, Lot, LotStatus, Pack, Role};
use crate::registry::goods::lot_last_time;
use crate::registry::request::{bad_identifier, emit, invalid, not_before};
use crate::registry::{authorize, load_own_site, record_status_change, Signed};
use crate::state;

/// Why a pack of `lot` cannot be dispensed on `today`, if it cannot.
pub fn refuse_dispensing(lot: &Lot, org_id: &str, today: u32) -> Option<String> {
    let name = format!("lot {}/{}", lot.get_gtin(), lot.get_lot());
    if lot.get_custodian_org_id() != org_id {
        return Some(format!(
            "{name} is in the custody of {}, not {org_id}; only its custodian dispenses it",
            lot.get_custodian_org_id()
        ));
    }
    if !lot.get_shipment_id().is_empty() {
        return Some(format!(
            "{name} is still in shipment {}; accept its delivery first",
            lot.get_shipment_id()
        ));
    }
    let status = lot.get_status();
    if status != LotStatus::ACTIVE {
        return Some(match status {
            LotStatus::RECALLED => {
                format!("{name} is RECALLED: do not dispense; return it as the recall notice says")
            }
            LotStatus::QUARANTINED => {
                format!("{name} is QUARANTINED pending an inspector's decision: do not dispense")
            }
            LotStatus::COMPROMISED => {
                format!("{name} is COMPROMISED by a cold-chain excursion: do not dispense")
            }
            other => format!("{name} is {other:?} and cannot be dispensed"),
        });
    }
    if lot.get_expiry_date() < today {
        return Some(format!(
            "{name} expired on {} (today is {today}): do not dispense",
            lot.get_expiry_date()
        ));
    }
    None
}

pub(super) fn dispense_pack(
    context: &mut dyn TransactionContext,
    by: Signed,
    action: &DispensePack,
) -> Result<(), ApplyError> {
    let agent = authorize(context, by.signer, None, &[Role::PHARMACY])?;
    let gtin = normalize_gtin(action.get_gtin()).map_err(bad_identifier)?;
    check_serial(action.get_serial()).map_err(bad_identifier)?;
    load_own_site(context, action.get_site_gln(), agent.get_org_id())?;
    let pack_address = RecordKind::Pack.address(&goods_key(&gtin, action.get_serial()));
    let mut pack: Pack = state::load_required(context, &pack_address, || {
        format!(
            "pack {gtin}/{} is not registered: it may be counterfeit; do not dispense it and report it",
            action.get_serial()
        )
    })?;
    if pack.get_dispensed() {
        return Err(invalid(format!(
            "pack {gtin}/{} was already dispensed on {} by organisation {} at site {}; a pack is dispensed once — report a possible counterfeit",
            action.get_serial(),
            crate::identifiers::utc_time_text(pack.get_dispensed_at_s()),
            pack.get_dispensed_org_id(),
            pack.get_dispensed_at_gln()
        )));
    }
    let lot_address = RecordKind::Lot.address(&goods_key(&gtin, pack.get_lot()));
    let mut lot: Lot = state::load_required(context, &lot_address, || {
        format!(
            "lot {gtin}/{} of the pack is missing from state",
            pack.get_lot()
        )
    })?;
    if let Some(why) = refuse_dispensing(&lot, agent.get_org_id(), day_of(by.now)) {
        return Err(invalid(why));
    }
    not_before(
        by.now,
        lot_last_time(&lot),
        "the lot's last recorded change",
    )?;
    pack.set_dispensed(true);
    pack.set_dispensed_by(by.signer.to_string());
    pack.set_dispensed_org_id(agent.get_org_id().to_string());
    pack.set_dispensed_at_gln(action.get_site_gln().to_string());
    pack.set_dispensed_at_s(by.now);
    lot.set_dispensed_count(lot.get_dispensed_count().saturating_add(1));
    let last_pack = lot.get_dispensed_count() >= lot.get_quantity();
    if last_pack {
        record_status_change(
            &mut lot,
            LotStatus::DISPENSED,
            by.signer,
            by.now,
            "last pack dispensed",
        );
    }
    state::store_all(
        context,
        vec![
            (lot_address, state::encode(&lot)?),
            (pack_address, state::encode(&pack)?),
        ],
    )?;
    emit(
        context,
        "pack-dispensed",
        &[
            ("gtin", &gtin),
            ("serial", action.get_serial()),
            ("lot", pack.get_lot()),
            ("org_id", agent.get_org_id()),
            ("site_gln", action.get_site_gln()),
        ],
        &state::encode(&pack)?,
    )?;
    if last_pack {
        emit(
            context,
            "lot-status",
            &[
                ("gtin", &gtin),
                ("lot", pack.get_lot()),
                ("from", "ACTIVE"),
                ("to", "DISPENSED"),
            ],
            &[],
        )?;
    }
    Ok(())
}
