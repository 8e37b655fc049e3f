//! The shipment state machine, walked exhaustively: every action from every
//! reachable state, by the party entitled to try it, with the outcome it must
//! have (the next status, or a refusal naming the reason). Then: no state is a
//! dead end — from every open state a delivery or a cancellation is reachable,
//! and the goods of every closed shipment can ship again.
use crate::messages::coldchain::CustodyPayload_oneof_action as C;
use crate::messages::coldchain::*;
use crate::registry::testkit::{assert_invalid, Org, World};
use crate::signing::Signer;

/// A reachable situation of shipment SH1 (maker's site → shop's site, lot L1).
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    Preparing,
    /// The maker proposed it to the carrier at its dock.
    Pending,
    /// The carrier proposed it to the shop at the shop's site.
    PendingAtDestination,
    /// Held by the carrier after a hand-off at the maker's dock.
    InTransitCarrier,
    /// Held by the destination organisation after a hand-off at the maker's
    /// dock: the state issue 12 found stuck.
    InTransitReceiver,
    Rejected,
    Delivered,
    Cancelled,
}

const STATES: [At; 8] = [
    At::Preparing,
    At::Pending,
    At::PendingAtDestination,
    At::InTransitCarrier,
    At::InTransitReceiver,
    At::Rejected,
    At::Delivered,
    At::Cancelled,
];

#[derive(Clone, Copy, Debug)]
enum Act {
    Propose,
    Accept,
    Reject,
    CancelHandoff,
    Deliver,
    CancelShipment,
}

const ACTIONS: [Act; 6] = [
    Act::Propose,
    Act::Accept,
    Act::Reject,
    Act::CancelHandoff,
    Act::Deliver,
    Act::CancelShipment,
];

struct Net {
    world: World,
    maker: Org,
    carrier: Org,
    shop: Org,
}

impl Net {
    fn org(&self, id: &str) -> &Org {
        [&self.maker, &self.carrier, &self.shop]
            .into_iter()
            .find(|org| org.id == id)
            .unwrap()
    }

    fn step(&mut self, by: &Signer, action: C) {
        self.world.now += 60;
        self.world.custody(by, action).unwrap();
    }
}

fn propose(to_org: &str, at: &str) -> C {
    let mut a = ProposeHandoff::new();
    a.set_shipment_id("SH1".into());
    a.set_to_org_id(to_org.into());
    a.set_at_gln(at.into());
    C::propose_handoff(a)
}

fn accept() -> C {
    let mut a = AcceptHandoff::new();
    a.set_shipment_id("SH1".into());
    C::accept_handoff(a)
}

fn reject() -> C {
    let mut a = RejectHandoff::new();
    a.set_shipment_id("SH1".into());
    a.set_reason("seal broken".into());
    C::reject_handoff(a)
}

fn cancel_handoff() -> C {
    let mut a = CancelHandoff::new();
    a.set_shipment_id("SH1".into());
    a.set_reason("truck changed".into());
    C::cancel_handoff(a)
}

pub(super) fn deliver(id: &str, at: &str, into_quarantine: bool) -> C {
    let mut a = DeliverShipment::new();
    a.set_shipment_id(id.into());
    a.set_at_gln(at.into());
    a.set_into_quarantine(into_quarantine);
    C::deliver_shipment(a)
}

fn cancel_shipment() -> C {
    let mut a = CancelShipment::new();
    a.set_shipment_id("SH1".into());
    a.set_reason("order withdrawn".into());
    C::cancel_shipment(a)
}

/// A fresh network with SH1 brought to `state`.
fn reach(state: At) -> Net {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let carrier = world.org("carrier", &[Role::CARRIER]);
    let shop = world.org("shop", &[Role::PHARMACY]);
    world.create_lot(&maker, "L1", &["S1"]);
    world.ship(&maker, "SH1", &shop.site, &["L1"]).unwrap();
    let mut net = Net {
        world,
        maker,
        carrier,
        shop,
    };
    let (m, c, s) = (
        net.maker.agent.clone(),
        net.carrier.agent.clone(),
        net.shop.agent.clone(),
    );
    let (m_site, s_site) = (net.maker.site.clone(), net.shop.site.clone());
    match state {
        At::Preparing => {}
        At::Pending => net.step(&m, propose("carrier", &m_site)),
        At::InTransitCarrier => {
            net.step(&m, propose("carrier", &m_site));
            net.step(&c, accept());
        }
        At::PendingAtDestination => {
            net.step(&m, propose("carrier", &m_site));
            net.step(&c, accept());
            net.step(&c, propose("shop", &s_site));
        }
        At::InTransitReceiver => {
            net.step(&m, propose("shop", &m_site));
            net.step(&s, accept());
        }
        At::Rejected => {
            net.step(&m, propose("carrier", &m_site));
            net.step(&c, reject());
        }
        At::Delivered => {
            net.step(&m, propose("carrier", &m_site));
            net.step(&c, accept());
            net.step(&c, propose("shop", &s_site));
            net.step(&s, accept());
        }
        At::Cancelled => net.step(&m, cancel_shipment()),
    }
    net.world.events();
    net
}

/// Who tries `act` in the current state (the party the rules name: the
/// custodian, the pending receiver, the proposer), and with what payload.
fn attempt(net: &Net, act: Act) -> (Signer, C) {
    let shipment = net.world.shipment("SH1");
    let holder = net.org(shipment.get_custodian_org_id());
    let receiver = match shipment.get_status() {
        ShipmentStatus::HANDOFF_PENDING => net.org(shipment.get_pending().get_to_org_id()),
        _ => &net.carrier,
    };
    match act {
        // To the next party on the way: the carrier at the holder's dock, the
        // shop at its own site when the carrier holds it.
        Act::Propose => {
            let action = if holder.id == "carrier" {
                propose("shop", &net.shop.site)
            } else {
                propose("carrier", &net.maker.site)
            };
            (holder.agent.clone(), action)
        }
        Act::Accept => (receiver.agent.clone(), accept()),
        Act::Reject => (receiver.agent.clone(), reject()),
        Act::CancelHandoff => (holder.agent.clone(), cancel_handoff()),
        Act::Deliver => (holder.agent.clone(), deliver("SH1", &net.shop.site, false)),
        Act::CancelShipment => (holder.agent.clone(), cancel_shipment()),
    }
}

/// The outcome every (state, action) must have.
enum Expect {
    Now(ShipmentStatus),
    Refused(&'static str),
}

fn expected(state: At, act: Act) -> Expect {
    use Act::*;
    use At::*;
    use Expect::{Now, Refused};
    use ShipmentStatus as S;
    const NO_PENDING: &str = "has no pending hand-off";
    const CLOSED_HANDOFF: &str = "a closed shipment cannot be handed off";
    const CLOSED: &str = "it is already closed";
    const NOT_THEIRS: &str = "belongs to organisation shop, not to the holder";
    match (state, act) {
        (Preparing, Propose) => Now(S::HANDOFF_PENDING),
        (Preparing, Accept | Reject | CancelHandoff) => Refused(NO_PENDING),
        (Preparing, Deliver) => Refused(NOT_THEIRS),
        (Preparing, CancelShipment) => Now(S::CANCELLED),

        (Pending, Propose) => Refused("already has a hand-off pending to carrier"),
        (Pending, Accept) => Now(S::IN_TRANSIT),
        (Pending, Reject) => Now(S::REFUSED),
        (Pending, CancelHandoff) => Now(S::PREPARING),
        (Pending, Deliver) => Refused("has a hand-off pending to carrier"),
        (Pending, CancelShipment) => Refused("withdraw it first (`coldchain shipment cancel"),

        (PendingAtDestination, Propose) => Refused("already has a hand-off pending to shop"),
        (PendingAtDestination, Accept) => Now(S::DELIVERED),
        (PendingAtDestination, Reject) => Now(S::REFUSED),
        (PendingAtDestination, CancelHandoff) => Now(S::IN_TRANSIT),
        (PendingAtDestination, Deliver) => Refused("has a hand-off pending to shop"),
        (PendingAtDestination, CancelShipment) => {
            Refused("withdraw it first (`coldchain shipment cancel")
        }

        (InTransitCarrier, Propose) => Now(S::HANDOFF_PENDING),
        (InTransitCarrier, Accept | Reject | CancelHandoff) => Refused(NO_PENDING),
        (InTransitCarrier, Deliver) => Refused(NOT_THEIRS),
        (InTransitCarrier, CancelShipment) => Now(S::CANCELLED),

        (InTransitReceiver, Propose) => Now(S::HANDOFF_PENDING),
        (InTransitReceiver, Accept | Reject | CancelHandoff) => Refused(NO_PENDING),
        (InTransitReceiver, Deliver) => Now(S::DELIVERED),
        (InTransitReceiver, CancelShipment) => Now(S::CANCELLED),

        (Rejected, Propose) => Now(S::HANDOFF_PENDING),
        (Rejected, Accept | Reject | CancelHandoff) => Refused(NO_PENDING),
        (Rejected, Deliver) => Refused(NOT_THEIRS),
        (Rejected, CancelShipment) => Now(S::CANCELLED),

        (Delivered | Cancelled, Propose) => Refused(CLOSED_HANDOFF),
        (Delivered | Cancelled, Accept | Reject | CancelHandoff) => Refused(NO_PENDING),
        (Delivered | Cancelled, Deliver) => Refused(CLOSED),
        (Delivered | Cancelled, CancelShipment) => {
            Refused("only an open shipment can be cancelled")
        }
    }
}

fn is_open(state: At) -> bool {
    !matches!(state, At::Delivered | At::Cancelled)
}

/// The situation a status reached from `from` corresponds to (for the graph walk).
fn situation(net: &Net, from: At) -> At {
    let shipment = net.world.shipment("SH1");
    match shipment.get_status() {
        ShipmentStatus::PREPARING => At::Preparing,
        ShipmentStatus::HANDOFF_PENDING if shipment.get_pending().get_to_org_id() == "shop" => {
            At::PendingAtDestination
        }
        ShipmentStatus::HANDOFF_PENDING => At::Pending,
        ShipmentStatus::IN_TRANSIT if shipment.get_custodian_org_id() == "shop" => {
            At::InTransitReceiver
        }
        ShipmentStatus::IN_TRANSIT => At::InTransitCarrier,
        ShipmentStatus::REFUSED => At::Rejected,
        ShipmentStatus::DELIVERED => At::Delivered,
        ShipmentStatus::CANCELLED => At::Cancelled,
        status => panic!("{from:?} led to {status:?}"),
    }
}

#[test]
fn every_action_from_every_state_is_allowed_or_refused_as_the_table_says() {
    let mut edges: Vec<(At, At)> = Vec::new();
    for state in STATES {
        for act in ACTIONS {
            let mut net = reach(state);
            let (signer, action) = attempt(&net, act);
            net.world.now += 60;
            let result = net.world.custody(&signer, action);
            match expected(state, act) {
                Expect::Now(status) => {
                    assert!(
                        result.is_ok(),
                        "{act:?} in {state:?} should be allowed: {result:?}"
                    );
                    assert_eq!(
                        net.world.shipment("SH1").get_status(),
                        status,
                        "{act:?} in {state:?}"
                    );
                    edges.push((state, situation(&net, state)));
                }
                Expect::Refused(reason) => {
                    assert_invalid(result, reason);
                    assert_eq!(
                        situation(&net, state),
                        state,
                        "a refused {act:?} left {state:?} unchanged"
                    );
                }
            }
        }
    }
    // No dead end: from every open state, delivery is reachable through allowed steps.
    for state in STATES.into_iter().filter(|state| is_open(*state)) {
        let mut seen = vec![state];
        let mut frontier = vec![state];
        while let Some(at) = frontier.pop() {
            for (from, to) in &edges {
                if *from == at && !seen.contains(to) {
                    seen.push(*to);
                    frontier.push(*to);
                }
            }
        }
        assert!(
            seen.contains(&At::Delivered),
            "{state:?} cannot reach DELIVERED: {seen:?}"
        );
        assert!(
            seen.contains(&At::Cancelled),
            "{state:?} cannot be ended: {seen:?}"
        );
    }
}

#[test]
fn a_key_that_is_not_an_agent_is_told_so_before_anything_about_the_shipment() {
    let stranger = Signer::generate();
    for state in STATES {
        for act in ACTIONS {
            let mut net = reach(state);
            let (_, action) = attempt(&net, act);
            net.world.now += 60;
            assert_invalid(
                net.world.custody(&stranger, action),
                "is not a registered agent; an admin of your organisation must add it first (`coldchain org add-agent`)",
            );
        }
    }
}

#[test]
fn a_receiver_given_the_goods_at_the_senders_dock_delivers_them_at_its_site() {
    // Issue 12: proposed straight to the final receiver at the origin dock.
    let mut net = reach(At::InTransitReceiver);
    let shop = net.shop.agent.clone();
    let (maker_site, shop_site) = (net.maker.site.clone(), net.shop.site.clone());
    assert_eq!(net.world.lot("L1").get_site_gln(), maker_site);
    assert_invalid(
        net.world.propose(&shop, "SH1", "shop", &shop_site),
        &format!("close it (`coldchain shipment deliver --id SH1 --at {shop_site}`)"),
    );
    net.world.now += 3_600;
    assert_invalid(
        net.world.custody(&shop, deliver("SH1", &maker_site, false)),
        &format!("delivered only at its destination (`--at {shop_site}`)"),
    );
    net.world.put_shipment_thermal("SH1", false);
    net.world
        .custody(&shop, deliver("SH1", &shop_site, false))
        .unwrap();
    let shipment = net.world.shipment("SH1");
    assert_eq!(shipment.get_status(), ShipmentStatus::DELIVERED);
    assert_eq!(shipment.get_closed_at_s(), net.world.now);
    assert_eq!(shipment.get_closed_by(), shop.public_key());
    assert_eq!(shipment.get_custodian_org_id(), "shop");
    let lot = net.world.lot("L1");
    assert_eq!(lot.get_custodian_org_id(), "shop");
    assert_eq!(lot.get_site_gln(), shop_site);
    assert_eq!(lot.get_shipment_id(), "");
    assert_eq!(lot.get_status(), LotStatus::ACTIVE);
    let events = net.world.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "coldchain/shipment-delivered");
    // The lot is free: the shop can ship it on.
    let next = net.world.new_site(&net.shop);
    net.world.now += 60;
    let shop_org = Org {
        id: "shop".into(),
        agent: shop,
        site: shop_site,
    };
    net.world.ship(&shop_org, "SH2", &next, &["L1"]).unwrap();
}

#[test]
fn compromised_goods_are_delivered_only_into_quarantine() {
    let mut net = reach(At::InTransitReceiver);
    let shop = net.shop.agent.clone();
    let shop_site = net.shop.site.clone();
    net.world.put_shipment_thermal("SH1", true);
    net.world.now += 60;
    assert_invalid(
        net.world.custody(&shop, deliver("SH1", &shop_site, false)),
        &format!("its cold-chain record is compromised: single high excursion over 3600 s. Take it knowingly into quarantine (`coldchain shipment deliver --id SH1 --at {shop_site} --into-quarantine`)"),
    );
    net.world
        .custody(&shop, deliver("SH1", &shop_site, true))
        .unwrap();
    let lot = net.world.lot("L1");
    assert_eq!(lot.get_status(), LotStatus::QUARANTINED);
    assert_eq!(
        lot.get_history().last().unwrap().get_reason(),
        "delivered into quarantine: shipment SH1"
    );
    let types: Vec<String> = net
        .world
        .events()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        ["coldchain/shipment-delivered", "coldchain/lot-status"]
    );
}

#[test]
fn an_organisation_delivers_a_transfer_between_its_own_sites() {
    let mut world = World::new();
    let maker = world.org("maker", &[Role::MANUFACTURER]);
    let warehouse = world.new_site(&maker);
    world.create_lot(&maker, "L1", &[]);
    world.ship(&maker, "SH1", &warehouse, &["L1"]).unwrap();
    world.now += 60;
    world
        .custody(&maker.agent, deliver("SH1", &warehouse, false))
        .unwrap();
    assert_eq!(
        world.shipment("SH1").get_status(),
        ShipmentStatus::DELIVERED
    );
    assert_eq!(world.lot("L1").get_site_gln(), warehouse);
}

#[test]
fn the_holder_of_goods_left_at_another_organisations_dock_can_ship_them_on() {
    // A carrier cancels the shipment it holds: the lot stays with it at the
    // maker's dock, and it can ship the lot from there (back, or onwards).
    let mut net = reach(At::InTransitCarrier);
    let carrier = net.carrier.agent.clone();
    net.step(&carrier, cancel_shipment());
    let lot = net.world.lot("L1");
    assert_eq!(lot.get_custodian_org_id(), "carrier");
    assert_eq!(lot.get_site_gln(), net.maker.site);
    let at_dock = Org {
        id: "carrier".into(),
        agent: carrier,
        site: net.maker.site.clone(),
    };
    net.world.now += 60;
    net.world
        .ship(&at_dock, "SH2", &net.shop.site.clone(), &["L1"])
        .unwrap();
}
