//! The story the API tests tell: a maker ships lots through a carrier to a
//! pharmacy; one shipment stays cold, one overheats; one lot is recalled, one
//! quarantined, one expires; a pack is dispensed.
use coldchain_processors::messages::coldchain::CustodyPayload_oneof_action as C;
use coldchain_processors::messages::coldchain::RegistryPayload_oneof_action as R;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::signing::Signer;

use super::{custody, gln, readings, registry, Chain};

pub const GTIN: &str = "09501101530003";
pub const T0: u64 = 1_700_000_000;

pub struct Parties {
    pub maker: Signer,
    pub carrier: Signer,
    pub pharmacy: Signer,
    pub stranger: Signer,
    pub regulator: Signer,
    pub gateway: Signer,
}

pub fn site(org: &str) -> String {
    let body = match org {
        "maker" => "950110153001",
        "carrier" => "950110153002",
        "pharmacy" => "950110153003",
        "stranger" => "950110153004",
        _ => "950110153005",
    };
    gln(body)
}

pub fn profile() -> StorageProfile {
    let mut p = StorageProfile::new();
    p.set_name("refrigerated 2-8 C".into());
    p.set_min_cdeg(200);
    p.set_max_cdeg(800);
    p.set_max_single_high_s(1_800);
    p.set_max_single_low_s(1_800);
    p.set_max_cumulative_high_s(3_600);
    p.set_max_cumulative_low_s(3_600);
    p.set_max_gap_s(3_600);
    p
}

fn lot_ref(lot: &str) -> LotRef {
    let mut r = LotRef::new();
    r.set_gtin(GTIN.into());
    r.set_lot(lot.into());
    r
}

/// Registers everyone (block 1) and the lots, loggers and gateway (block 2).
pub fn register(ledger: &mut impl Chain) -> Parties {
    let parties = Parties {
        maker: Signer::generate(),
        carrier: Signer::generate(),
        pharmacy: Signer::generate(),
        stranger: Signer::generate(),
        regulator: Signer::generate(),
        gateway: Signer::generate(),
    };
    let admin = ledger.admin();
    let orgs = [
        ("maker", &parties.maker, Role::MANUFACTURER),
        ("carrier", &parties.carrier, Role::CARRIER),
        ("pharmacy", &parties.pharmacy, Role::PHARMACY),
        ("stranger", &parties.stranger, Role::PHARMACY),
        ("agency", &parties.regulator, Role::REGULATOR),
    ];
    let mut txns = Vec::new();
    for (org, key, role) in &orgs {
        let mut create = CreateOrganization::new();
        create.set_org_id(org.to_string());
        create.set_name(org.to_string());
        let roles = if *role == Role::REGULATOR {
            vec![Role::REGULATOR, Role::INSPECTOR]
        } else {
            vec![*role]
        };
        create.set_roles(roles);
        txns.push(registry(&admin, T0, R::create_organization(create)));
        let mut add = AddSite::new();
        add.set_org_id(org.to_string());
        add.set_gln(site(org));
        add.set_name(format!("{org} site"));
        txns.push(registry(&admin, T0, R::add_site(add)));
        let mut agent = AddAgent::new();
        agent.set_org_id(org.to_string());
        agent.set_public_key(key.public_key().to_string());
        agent.set_name(format!("{org} agent"));
        agent.set_roles(vec![*role, Role::ADMIN]);
        txns.push(registry(&admin, T0, R::add_agent(agent)));
    }
    ledger.submit(txns).expect("participants register");

    let mut txns = Vec::new();
    for (lot, expiry) in [
        ("L-OK", 20301231),
        ("L-HOT", 20301231),
        ("L-RECALL", 20301231),
        ("L-QUAR", 20301231),
        ("L-EXP", 20240101),
    ] {
        let mut create = CreateLot::new();
        create.set_gtin(GTIN.into());
        create.set_lot(lot.into());
        create.set_expiry_date(expiry);
        create.set_quantity(3);
        create.set_serials(
            vec![
                format!("{lot}-S1"),
                format!("{lot}-S2"),
                format!("{lot}-S3"),
            ]
            .into(),
        );
        create.set_profile(profile());
        create.set_site_gln(site("maker"));
        create.set_product_name("Cold vaccine".into());
        txns.push(registry(&parties.maker, T0 + 10, R::create_lot(create)));
    }
    for device in ["D1", "D2"] {
        let mut register = RegisterDevice::new();
        register.set_device_id(device.into());
        register.set_org_id("carrier".into());
        register.set_model("logger".into());
        register.set_calibration_due_date(20301231);
        txns.push(registry(
            &parties.carrier,
            T0 + 10,
            R::register_device(register),
        ));
    }
    let mut grant = AuthorizeGateway::new();
    grant.set_org_id("carrier".into());
    grant.set_public_key(parties.gateway.public_key().into());
    grant.set_name("reefer gateway".into());
    txns.push(registry(
        &parties.carrier,
        T0 + 10,
        R::authorize_gateway(grant),
    ));
    ledger.submit(txns).expect("lots and loggers register");
    parties
}

/// Maker ships `lot` in `shipment` with logger `device` and hands it to the carrier.
pub fn ship_to_carrier(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    lot: &str,
    device: &str,
    at: u64,
) {
    ship_to_carrier_for(ledger, p, shipment, lot, device, "pharmacy", at);
}

/// Like [`ship_to_carrier`], for a shipment bound to `destination_org`'s site.
pub fn ship_to_carrier_for(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    lot: &str,
    device: &str,
    destination_org: &str,
    at: u64,
) {
    ship_with_loggers_for(ledger, p, shipment, lot, &[device], destination_org, at);
}

/// Like [`ship_to_carrier`], with several loggers attached to the shipment.
pub fn ship_with_loggers(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    lot: &str,
    devices: &[&str],
    at: u64,
) {
    ship_with_loggers_for(ledger, p, shipment, lot, devices, "pharmacy", at);
}

fn ship_with_loggers_for(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    lot: &str,
    devices: &[&str],
    destination_org: &str,
    at: u64,
) {
    let mut create = CreateShipment::new();
    create.set_shipment_id(shipment.into());
    create.set_from_gln(site("maker"));
    create.set_to_gln(site(destination_org));
    create.set_lots(vec![lot_ref(lot)].into());
    let mut txns = vec![custody(&p.maker, at, C::create_shipment(create))];
    for device in devices {
        let mut attach = AttachDevice::new();
        attach.set_shipment_id(shipment.into());
        attach.set_device_id(device.to_string());
        txns.push(custody(&p.carrier, at, C::attach_device(attach)));
    }
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id(shipment.into());
    propose.set_to_org_id("carrier".into());
    propose.set_at_gln(site("maker"));
    txns.push(custody(&p.maker, at, C::propose_handoff(propose)));
    ledger.submit(txns).expect("shipment created and proposed");
    let mut accept = AcceptHandoff::new();
    accept.set_shipment_id(shipment.into());
    ledger
        .submit(vec![custody(
            &p.carrier,
            at + 60,
            C::accept_handoff(accept),
        )])
        .expect("carrier accepts");
}

/// Ten-minute readings from `start` at the given temperatures.
pub fn record(
    ledger: &mut impl Chain,
    p: &Parties,
    device: &str,
    shipment: &str,
    first_seq: u64,
    start: u64,
    temps: &[i32],
) {
    let points: Vec<(u64, u64, i32)> = temps
        .iter()
        .enumerate()
        .map(|(i, t)| (first_seq + i as u64, start + 600 * i as u64, *t))
        .collect();
    ledger
        .submit(vec![readings(
            &p.gateway, "carrier", device, shipment, &points,
        )])
        .expect("readings accepted");
}

/// Carrier hands the shipment to the pharmacy.
pub fn deliver(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    at: u64,
    into_quarantine: bool,
) {
    deliver_to(
        ledger,
        p,
        shipment,
        &p.pharmacy,
        "pharmacy",
        at,
        into_quarantine,
    );
}

/// Carrier hands the shipment to `receiver` (of organisation `org`) at its site.
pub fn deliver_to(
    ledger: &mut impl Chain,
    p: &Parties,
    shipment: &str,
    receiver: &Signer,
    org: &str,
    at: u64,
    into_quarantine: bool,
) {
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id(shipment.into());
    propose.set_to_org_id(org.into());
    propose.set_at_gln(site(org));
    ledger
        .submit(vec![custody(&p.carrier, at, C::propose_handoff(propose))])
        .expect("delivery proposed");
    let mut accept = AcceptHandoff::new();
    accept.set_shipment_id(shipment.into());
    accept.set_into_quarantine(into_quarantine);
    ledger
        .submit(vec![custody(receiver, at + 60, C::accept_handoff(accept))])
        .expect("receiver accepts");
}

/// The pharmacy sends `lot` straight back to the maker, who accepts it at its site.
pub fn return_to_maker(ledger: &mut impl Chain, p: &Parties, shipment: &str, lot: &str, at: u64) {
    let mut create = CreateShipment::new();
    create.set_shipment_id(shipment.into());
    create.set_from_gln(site("pharmacy"));
    create.set_to_gln(site("maker"));
    create.set_lots(vec![lot_ref(lot)].into());
    let mut propose = ProposeHandoff::new();
    propose.set_shipment_id(shipment.into());
    propose.set_to_org_id("maker".into());
    propose.set_at_gln(site("maker"));
    ledger
        .submit(vec![
            custody(&p.pharmacy, at, C::create_shipment(create)),
            custody(&p.pharmacy, at, C::propose_handoff(propose)),
        ])
        .expect("return shipment created and proposed");
    let mut accept = AcceptHandoff::new();
    accept.set_shipment_id(shipment.into());
    ledger
        .submit(vec![custody(&p.maker, at + 60, C::accept_handoff(accept))])
        .expect("maker accepts the return");
}

pub fn change_status(
    ledger: &mut impl Chain,
    by: &Signer,
    lot: &str,
    status: LotStatus,
    reason: &str,
    at: u64,
) {
    let mut change = ChangeLotStatus::new();
    change.set_lot(lot_ref(lot));
    change.set_status(status);
    change.set_reason(reason.into());
    ledger
        .submit(vec![registry(by, at, R::change_lot_status(change))])
        .expect("status change accepted");
}

pub fn dispense(ledger: &mut impl Chain, p: &Parties, serial: &str, at: u64) {
    let mut dispense = DispensePack::new();
    dispense.set_gtin(GTIN.into());
    dispense.set_serial(serial.into());
    dispense.set_site_gln(site("pharmacy"));
    ledger
        .submit(vec![custody(&p.pharmacy, at, C::dispense_pack(dispense))])
        .expect("dispensing accepted");
}

/// The whole story; returns the parties.
pub fn full_story(ledger: &mut impl Chain) -> Parties {
    let p = register(ledger);
    ship_to_carrier(ledger, &p, "SH-COLD", "L-OK", "D1", T0 + 100);
    ship_to_carrier(ledger, &p, "SH-HOT", "L-HOT", "D2", T0 + 100);
    record(
        ledger,
        &p,
        "D1",
        "SH-COLD",
        1,
        T0 + 200,
        &[500, 520, 480, 510, 530, 490, 505],
    );
    // One hour at 12 °C: beyond the 30-minute single-event budget.
    record(
        ledger,
        &p,
        "D2",
        "SH-HOT",
        1,
        T0 + 200,
        &[500, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 500],
    );
    record(
        ledger,
        &p,
        "D1",
        "SH-COLD",
        8,
        T0 + 200 + 7 * 600,
        &[500, 510, 495],
    );
    deliver(ledger, &p, "SH-COLD", T0 + 10_000, false);
    dispense(ledger, &p, "L-OK-S2", T0 + 11_000);
    change_status(
        ledger,
        &p.maker,
        "L-RECALL",
        LotStatus::RECALLED,
        "contamination found",
        T0 + 12_000,
    );
    change_status(
        ledger,
        &p.regulator,
        "L-QUAR",
        LotStatus::QUARANTINED,
        "inspection pending",
        T0 + 12_000,
    );
    p
}
