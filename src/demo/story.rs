//! The demo's story, told through the ledger exactly as participants would
//! tell it: every step is a signed transaction submitted over the Sawtooth
//! REST API, and every refusal printed is the transaction processor's own.
//!
//! Story time runs on a simulated clock that starts a day ago, so a 6-hour
//! truck journey with one reading a minute plays in seconds while every
//! payload time stays in the past (no logger clock is "in the future").
use anyhow::{bail, Context, Result};
use coldchain_processors::addressing::{goods_key, RecordKind};
use coldchain_processors::identifiers::with_check_digit;
use coldchain_processors::messages::coldchain as pb;
use coldchain_processors::signing::{Signer, TransactionSpec};

use crate::client::{decode_record, LedgerClient, Outcome};
use crate::ledger_commands::{
    self as lc, BloodCommand, ComponentArg, DeviceCommand, LotSpec, LotStatusArgs, OrgCommand,
    PriorityArg, RoleArg, ShipmentCommand,
};
use crate::profiles::ProfilePreset;

pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 3600;

/// The example GTIN of GS1's documentation (valid check digit).
pub const VACCINE_GTIN: &str = "09501101530003";
pub const LOT_A: &str = "VAX-2026-A";
pub const LOT_B: &str = "VAX-2026-B";
pub const LOT_C: &str = "VAX-2026-C";
pub const REEFER_DEVICE: &str = "LOGGER-REEFER-01";
pub const BOX_DEVICE: &str = "LOGGER-BOX-02";
pub const SHIPMENT_A: &str = "SHP-A-001";
pub const SHIPMENT_B: &str = "SHP-B-001";
pub const SHIPMENT_A2: &str = "SHP-A-002";
pub const BLOOD_SHIPMENT: &str = "SHP-BLOOD-001";
pub const BLOOD_REQUEST: &str = "REQ-ONEG-001";
pub const CARRIER_ORG: &str = "coldtrans";

/// One participant: an organisation with a site and one agent key.
pub struct Party {
    pub org: &'static str,
    pub name: &'static str,
    pub roles: Vec<RoleArg>,
    pub gln: String,
    pub key: Signer,
}

pub struct Cast {
    pub admin: Signer,
    pub manufacturer: Party,
    pub carrier: Party,
    pub distributor: Party,
    pub pharmacy: Party,
    pub regulator: Party,
    pub blood_bank: Party,
    pub hospital: Party,
    pub gateway: Signer,
}

fn gln(body: &str) -> String {
    with_check_digit(body).unwrap_or_default()
}

impl Cast {
    pub fn new(admin: Signer, gateway: Signer) -> Cast {
        let party = |org, name, roles, gln_body: &str| Party {
            org,
            name,
            roles,
            gln: gln(gln_body),
            key: Signer::generate(),
        };
        Cast {
            admin,
            manufacturer: party(
                "pharmaco",
                "PharmaCo Vaccines",
                vec![RoleArg::Manufacturer],
                "950110100001",
            ),
            carrier: party(
                CARRIER_ORG,
                "ColdTrans Logistics",
                vec![RoleArg::Carrier],
                "950110100002",
            ),
            distributor: party(
                "meddist",
                "MedDist Wholesale",
                vec![RoleArg::Distributor],
                "950110100003",
            ),
            pharmacy: party(
                "citypharm",
                "City Pharmacy",
                vec![RoleArg::Pharmacy],
                "950110100004",
            ),
            regulator: party(
                "agency",
                "Medicines Agency",
                vec![RoleArg::Regulator, RoleArg::Inspector],
                "950110100005",
            ),
            blood_bank: party(
                "bloodbank",
                "Regional Blood Bank",
                vec![RoleArg::BloodBank],
                "950110100006",
            ),
            hospital: party(
                "cityhosp",
                "City Hospital",
                vec![RoleArg::Hospital],
                "950110100007",
            ),
            gateway,
        }
    }

    pub fn parties(&self) -> [&Party; 7] {
        [
            &self.manufacturer,
            &self.carrier,
            &self.distributor,
            &self.pharmacy,
            &self.regulator,
            &self.blood_bank,
            &self.hospital,
        ]
    }
}

/// Prints story lines and submits the story's transactions.
pub struct Narrator {
    pub client: LedgerClient,
    pub clock: u64,
    pub step: u32,
}

impl Narrator {
    pub fn say(&mut self, text: &str) {
        self.step += 1;
        println!("\n{:>2}. {text}", self.step);
    }

    /// Advances story time.
    pub fn at(&mut self, time_s: u64) -> u64 {
        self.clock = self.clock.max(time_s);
        self.clock
    }

    /// Submits and expects a commit.
    pub async fn commit(
        &mut self,
        what: &str,
        spec: TransactionSpec,
        signer: &Signer,
    ) -> Result<()> {
        match self.client.submit(spec, signer).await? {
            Outcome::Committed { .. } => {
                println!("    ✔ {what}");
                Ok(())
            }
            Outcome::Invalid { reason, .. } => bail!("{what} was refused: {reason}"),
            Outcome::Pending { batch_id } => {
                bail!("{what} did not commit in time (batch {batch_id})")
            }
        }
    }

    /// Submits and expects the ledger to refuse; prints the processor's reason.
    pub async fn refused(
        &mut self,
        what: &str,
        spec: TransactionSpec,
        signer: &Signer,
    ) -> Result<String> {
        match self.client.submit(spec, signer).await? {
            Outcome::Invalid { reason, .. } => {
                println!("    ✘ {what} — refused by the ledger: {reason}");
                Ok(reason)
            }
            Outcome::Committed { .. } => bail!("{what} was expected to be refused but committed"),
            Outcome::Pending { batch_id } => {
                bail!("{what} did not resolve in time (batch {batch_id})")
            }
        }
    }

    pub async fn record<M: protobuf::Message>(
        &self,
        address: &str,
        what: &str,
    ) -> Result<Option<M>> {
        match self.client.state(address).await? {
            Some(bytes) => Ok(Some(decode_record(&bytes, what)?)),
            None => Ok(None),
        }
    }
}

/// Refuses to play on a network that already holds the story's first
/// organisation (an earlier run): every step would be refused as a duplicate.
pub async fn check_fresh_network(client: &LedgerClient) -> Result<()> {
    let first = "pharmaco";
    if client
        .state(&RecordKind::Organization.address(first))
        .await?
        .is_some()
    {
        bail!(
            "this network already holds organisation {first:?} from an earlier demo run; \
             the story creates its organisations, lots and shipments afresh, so play it on a \
             new network (scripts/sawtooth.sh single gives one in a minute)"
        );
    }
    Ok(())
}

/// Registers organisations, sites, agents, loggers and the gateway grant.
pub async fn onboard(n: &mut Narrator, cast: &Cast) -> Result<()> {
    n.say("The network admin onboards seven organisations, their sites and agents");
    for party in cast.parties() {
        let t = n.at(n.clock + 1);
        let create = OrgCommand::Create {
            id: party.org.into(),
            name: party.name.into(),
            roles: party.roles.clone(),
        };
        n.commit(
            &format!("organisation {} ({})", party.name, party.org),
            lc::org_spec(&create, t)?,
            &cast.admin,
        )
        .await?;
        let mut roles = party.roles.clone();
        roles.push(RoleArg::Admin);
        let agent = OrgCommand::AddAgent {
            org: party.org.into(),
            public_key: party.key.public_key().into(),
            name: format!("{} operator", party.name),
            roles,
        };
        n.commit("  agent key", lc::org_spec(&agent, t)?, &cast.admin)
            .await?;
        let site = OrgCommand::AddSite {
            org: party.org.into(),
            gln: party.gln.clone(),
            name: format!("{} main site", party.name),
            address: String::new(),
        };
        n.commit(
            &format!("  site GLN {}", party.gln),
            lc::org_spec(&site, t)?,
            &party.key,
        )
        .await?;
    }
    let t = n.at(n.clock + 60);
    n.say("ColdTrans registers two temperature loggers and authorises its sensor gateway");
    for (device, model) in [
        (REEFER_DEVICE, "reefer logger (MQTT)"),
        (BOX_DEVICE, "shipping-box logger (serial)"),
    ] {
        let register = DeviceCommand::Register {
            id: device.into(),
            org: CARRIER_ORG.into(),
            model: model.into(),
            calibration_due: 20281231,
            public_key: String::new(),
        };
        n.commit(
            &format!("logger {device}"),
            lc::device_spec(&register, t)?,
            &cast.carrier.key,
        )
        .await?;
    }
    let grant = OrgCommand::AuthorizeGateway {
        org: CARRIER_ORG.into(),
        public_key: cast.gateway.public_key().into(),
        name: "truck gateway".into(),
    };
    n.commit(
        "gateway authorised",
        lc::org_spec(&grant, t)?,
        &cast.carrier.key,
    )
    .await?;
    Ok(())
}

pub fn serials(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}{i:04}")).collect()
}

/// The manufacturer registers three lots and ships two of them with ColdTrans.
pub async fn ship_lots(n: &mut Narrator, cast: &Cast) -> Result<()> {
    let t = n.at(n.clock + 10 * MINUTE);
    n.say("PharmaCo registers three lots of a 2–8 °C vaccine");
    for (lot, prefix) in [(LOT_A, "A"), (LOT_B, "B"), (LOT_C, "C")] {
        let spec = LotSpec {
            gtin: VACCINE_GTIN.into(),
            lot: lot.into(),
            expiry: 20281231,
            quantity: 5,
            serials: serials(prefix, 5),
            profile: ProfilePreset::Refrigerated,
            // The maker's stability data: 72 h in all at 8–25 °C, 12 h at 25–30 °C.
            stability: crate::profiles::StabilityArgs {
                bands: vec![
                    crate::profiles::parse_band("8.01..25=72h").map_err(anyhow::Error::msg)?,
                    crate::profiles::parse_band("25.01..30=12h").map_err(anyhow::Error::msg)?,
                ],
                arrhenius: None,
            },
            site: cast.manufacturer.gln.clone(),
            product: "Influenza vaccine, 10 x 0.5 ml".into(),
        };
        n.commit(
            &format!("lot {lot}"),
            lc::create_lot_spec(&spec, t)?,
            &cast.manufacturer.key,
        )
        .await?;
    }
    let t = n.at(n.clock + 20 * MINUTE);
    n.say("Two shipments leave PharmaCo for MedDist, each with a logger, handed to ColdTrans");
    for (shipment, lot, device) in [
        (SHIPMENT_A, LOT_A, REEFER_DEVICE),
        (SHIPMENT_B, LOT_B, BOX_DEVICE),
    ] {
        let create = ShipmentCommand::Create {
            id: shipment.into(),
            from: cast.manufacturer.gln.clone(),
            to: cast.distributor.gln.clone(),
            lots: vec![format!("{VACCINE_GTIN}/{lot}")],
            blood_units: vec![],
            profile: None,
        };
        n.commit(
            &format!("shipment {shipment} with lot {lot}"),
            lc::shipment_spec(&create, t)?,
            &cast.manufacturer.key,
        )
        .await?;
        let attach = DeviceCommand::Attach {
            shipment: shipment.into(),
            device: device.into(),
        };
        n.commit(
            &format!("  logger {device} attached"),
            lc::device_spec(&attach, t)?,
            &cast.carrier.key,
        )
        .await?;
        let propose = ShipmentCommand::Propose {
            id: shipment.into(),
            to_org: CARRIER_ORG.into(),
            at: cast.manufacturer.gln.clone(),
        };
        n.commit(
            "  hand-off to ColdTrans proposed",
            lc::shipment_spec(&propose, t)?,
            &cast.manufacturer.key,
        )
        .await?;
        let accept = ShipmentCommand::Accept {
            id: shipment.into(),
            into_quarantine: false,
        };
        n.commit(
            "  ColdTrans accepts custody",
            lc::shipment_spec(&accept, t + MINUTE)?,
            &cast.carrier.key,
        )
        .await?;
    }
    Ok(())
}

/// Reads the thermal record of a shipment.
pub async fn shipment_thermal(n: &Narrator, shipment: &str) -> Result<Option<pb::ThermalRecord>> {
    n.record(
        &RecordKind::ShipmentThermal.address(shipment),
        "shipment thermal",
    )
    .await
}

pub fn describe_thermal(record: &pb::ThermalRecord) -> String {
    // Sensor family 1.1 lists excursions on each logger's track; the record's
    // total counts the worst logger's.
    let excursions = record
        .get_excursions_closed_total()
        .max(record.get_closed().len() as u64)
        + u64::from(record.has_current());
    let mut text = format!(
        "{} readings, {:.2}…{:.2} °C, {} min above range, {} excursion(s), {} warning(s)",
        record.get_reading_count(),
        f64::from(record.get_min_cdeg()) / 100.0,
        f64::from(record.get_max_cdeg()) / 100.0,
        record.get_time_above_s() / 60,
        excursions,
        record.get_warnings()
    );
    if record.get_compromised() {
        text.push_str(&format!(
            " — COMPROMISED: {}",
            record.get_compromised_reason()
        ));
    }
    text
}

/// Deliveries at MedDist: lot A (door-open excursion within budget) is accepted,
/// lot B (compressor failure) is refused by the ledger and rejected.
pub async fn deliver_to_distributor(n: &mut Narrator, cast: &Cast, arrival: u64) -> Result<()> {
    let t = n.at(arrival);
    n.say("ColdTrans arrives at MedDist and proposes both hand-offs");
    for shipment in [SHIPMENT_A, SHIPMENT_B] {
        let propose = ShipmentCommand::Propose {
            id: shipment.into(),
            to_org: cast.distributor.org.into(),
            at: cast.distributor.gln.clone(),
        };
        n.commit(
            &format!("hand-off of {shipment} proposed"),
            lc::shipment_spec(&propose, t)?,
            &cast.carrier.key,
        )
        .await?;
    }
    let t = n.at(t + 5 * MINUTE);
    n.say("MedDist accepts lot A: its door-open excursion stayed within budget");
    let accept = ShipmentCommand::Accept {
        id: SHIPMENT_A.into(),
        into_quarantine: false,
    };
    n.commit(
        &format!("{SHIPMENT_A} accepted"),
        lc::shipment_spec(&accept, t)?,
        &cast.distributor.key,
    )
    .await?;
    n.say("MedDist tries to accept lot B, whose reefer compressor failed on the road");
    let accept_b = ShipmentCommand::Accept {
        id: SHIPMENT_B.into(),
        into_quarantine: false,
    };
    n.refused(
        &format!("accepting {SHIPMENT_B}"),
        lc::shipment_spec(&accept_b, t)?,
        &cast.distributor.key,
    )
    .await?;
    let reject = ShipmentCommand::Reject {
        id: SHIPMENT_B.into(),
        reason: "cold chain broken: compressor failure, lot compromised".into(),
    };
    n.commit(
        &format!("{SHIPMENT_B} rejected by MedDist"),
        lc::shipment_spec(&reject, t)?,
        &cast.distributor.key,
    )
    .await?;
    Ok(())
}

/// MedDist re-ships lot A to City Pharmacy, which verifies and dispenses a pack.
pub async fn pharmacy(n: &mut Narrator, cast: &Cast) -> Result<()> {
    let t = n.at(n.clock + HOUR);
    n.say("MedDist ships lot A on to City Pharmacy");
    let create = ShipmentCommand::Create {
        id: SHIPMENT_A2.into(),
        from: cast.distributor.gln.clone(),
        to: cast.pharmacy.gln.clone(),
        lots: vec![format!("{VACCINE_GTIN}/{LOT_A}")],
        blood_units: vec![],
        profile: None,
    };
    n.commit(
        &format!("shipment {SHIPMENT_A2}"),
        lc::shipment_spec(&create, t)?,
        &cast.distributor.key,
    )
    .await?;
    let propose = ShipmentCommand::Propose {
        id: SHIPMENT_A2.into(),
        to_org: cast.pharmacy.org.into(),
        at: cast.pharmacy.gln.clone(),
    };
    n.commit(
        "hand-off to City Pharmacy proposed",
        lc::shipment_spec(&propose, t + MINUTE)?,
        &cast.distributor.key,
    )
    .await?;
    let accept = ShipmentCommand::Accept {
        id: SHIPMENT_A2.into(),
        into_quarantine: false,
    };
    n.commit(
        "City Pharmacy accepts custody",
        lc::shipment_spec(&accept, t + 2 * HOUR)?,
        &cast.pharmacy.key,
    )
    .await?;
    let t = n.at(t + 3 * HOUR);
    n.say("City Pharmacy dispenses pack A0001 (verified first on the ledger)");
    let pack = RecordKind::Pack.address(&goods_key(VACCINE_GTIN, "A0001"));
    if n.record::<pb::Pack>(&pack, "pack").await?.is_none() {
        bail!("pack A0001 is not on the ledger");
    }
    n.commit(
        "pack A0001 dispensed",
        lc::dispense_spec(VACCINE_GTIN, "A0001", &cast.pharmacy.gln, t)?,
        &cast.pharmacy.key,
    )
    .await?;
    n.refused(
        "dispensing pack A0001 a second time",
        lc::dispense_spec(VACCINE_GTIN, "A0001", &cast.pharmacy.gln, t + MINUTE)?,
        &cast.pharmacy.key,
    )
    .await?;
    Ok(())
}

/// The regulator recalls lot C; its manufacturer cannot undo that.
pub async fn recall(n: &mut Narrator, cast: &Cast) -> Result<()> {
    let t = n.at(n.clock + HOUR);
    n.say("The medicines agency recalls lot C (a labelling error found at inspection)");
    let args = LotStatusArgs {
        gtin: VACCINE_GTIN.into(),
        lot: LOT_C.into(),
        reason: "labelling error: wrong expiry printed".into(),
    };
    n.commit(
        "lot C recalled",
        lc::lot_status_spec(&args, pb::LotStatus::RECALLED, t)?,
        &cast.regulator.key,
    )
    .await?;
    let lot: pb::Lot = n
        .record(
            &RecordKind::Lot.address(&goods_key(VACCINE_GTIN, LOT_C)),
            "lot",
        )
        .await?
        .context("lot C vanished from state")?;
    println!("    lot C status on the ledger: {:?}", lot.get_status());
    Ok(())
}

pub const DONATIONS: [&str; 3] = ["A999926000101", "A999926000102", "A999926000103"];

/// An emergency O− red-cell request, fulfilled by the regional blood bank.
pub async fn emergency_blood(n: &mut Narrator, cast: &Cast) -> Result<()> {
    let t = n.at(n.clock + 10 * MINUTE);
    n.say("The blood bank holds three units of red cells");
    for (din, group) in DONATIONS.iter().zip(["O-", "O-", "A+"]) {
        let register = BloodCommand::Register {
            din: Some((*din).into()),
            scans: Vec::new(),
            component: Some(ComponentArg::RedCells),
            group: Some(group.into()),
            volume_ml: 280,
            expiry: Some(20281231),
            site: cast.blood_bank.gln.clone(),
        };
        n.commit(
            &format!("unit {din} ({group})"),
            lc::blood_spec(&register, t)?,
            &cast.blood_bank.key,
        )
        .await?;
    }
    let t = n.at(t + 5 * MINUTE);
    n.say("City Hospital files an emergency request: 2 units of O− red cells within 45 minutes");
    let request = BloodCommand::Request {
        id: BLOOD_REQUEST.into(),
        component: ComponentArg::RedCells,
        group: "O-".into(),
        units: 2,
        needed_in_minutes: 45,
        priority: PriorityArg::Emergency,
        hospital: cast.hospital.gln.clone(),
    };
    n.commit(
        "emergency request filed",
        lc::blood_spec(&request, t)?,
        &cast.hospital.key,
    )
    .await?;
    let t = n.at(t + 2 * MINUTE);
    n.say("The blood bank offers units; the ledger checks ABO/Rh compatibility");
    let wrong = BloodCommand::Offer {
        request: BLOOD_REQUEST.into(),
        offer: "OFFER-WRONG".into(),
        units: vec![DONATIONS[0].into(), DONATIONS[2].into()],
    };
    n.refused(
        "offering an A+ unit for an O− patient",
        lc::blood_spec(&wrong, t)?,
        &cast.blood_bank.key,
    )
    .await?;
    let offer = BloodCommand::Offer {
        request: BLOOD_REQUEST.into(),
        offer: "OFFER-001".into(),
        units: vec![DONATIONS[0].into(), DONATIONS[1].into()],
    };
    n.commit(
        "two O− units offered",
        lc::blood_spec(&offer, t)?,
        &cast.blood_bank.key,
    )
    .await?;
    let t = n.at(t + 3 * MINUTE);
    let accept = BloodCommand::Accept {
        request: BLOOD_REQUEST.into(),
        offer: "OFFER-001".into(),
        shipment: BLOOD_SHIPMENT.into(),
    };
    n.commit(
        "hospital accepts; transport shipment opened",
        lc::blood_spec(&accept, t)?,
        &cast.hospital.key,
    )
    .await?;
    let propose = ShipmentCommand::Propose {
        id: BLOOD_SHIPMENT.into(),
        to_org: cast.hospital.org.into(),
        at: cast.hospital.gln.clone(),
    };
    n.commit(
        "the blood bank's courier hands the units over at the hospital",
        lc::shipment_spec(&propose, t + 25 * MINUTE)?,
        &cast.blood_bank.key,
    )
    .await?;
    let accept = ShipmentCommand::Accept {
        id: BLOOD_SHIPMENT.into(),
        into_quarantine: false,
    };
    n.commit(
        "City Hospital accepts the units",
        lc::shipment_spec(&accept, t + 28 * MINUTE)?,
        &cast.hospital.key,
    )
    .await?;
    let t = n.at(t + 30 * MINUTE);
    let deliver = BloodCommand::Deliver {
        request: BLOOD_REQUEST.into(),
    };
    n.commit(
        "delivery confirmed at City Hospital",
        lc::blood_spec(&deliver, t)?,
        &cast.hospital.key,
    )
    .await?;
    let request: pb::EmergencyRequest = n
        .record(
            &RecordKind::EmergencyRequest.address(BLOOD_REQUEST),
            "emergency request",
        )
        .await?
        .context("the emergency request vanished from state")?;
    println!(
        "    request {:?}; request-to-delivery {} min",
        request.get_status(),
        request.get_request_to_delivery_s() / 60
    );
    Ok(())
}
