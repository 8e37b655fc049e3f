//! The participant commands of `coldchain`: each builds one family payload,
//! signs it with the caller's key, submits it and prints the outcome.
//! The rules themselves are enforced by the transaction processors; these
//! commands only check what they must to build a well-formed payload.
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use coldchain_processors::messages::coldchain as pb;
use coldchain_processors::signing::{Signer, TransactionSpec};
use coldchain_processors::{custody, identifiers, isbt128, registry};

use crate::client::{LedgerClient, Outcome};
use crate::keys;
use crate::profiles::{ProfilePreset, StabilityArgs};

/// Flags every ledger command takes.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Sawtooth REST API of the node or network.
    #[arg(
        long,
        env = "COLDCHAIN_URL",
        default_value = "http://127.0.0.1:8008",
        global = true
    )]
    pub url: String,
    /// Private key file (Sawtooth hex format) to sign with.
    #[arg(long, env = "COLDCHAIN_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Seconds to wait for the batch to commit.
    #[arg(long, env = "COLDCHAIN_WAIT", default_value_t = 30, global = true)]
    pub wait: u64,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    pub fn client(&self) -> Result<LedgerClient> {
        LedgerClient::new(&self.url, Duration::from_secs(self.wait))
    }

    pub fn signer(&self) -> Result<Signer> {
        let path = match &self.key {
            Some(path) => path.clone(),
            None => keys::default_key_path()?,
        };
        Signer::from_file(&path).with_context(|| {
            format!(
                "cannot load the signing key {}; create one with `coldchain keygen` or pass --key",
                path.display()
            )
        })
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Manufacturer,
    Distributor,
    Carrier,
    Pharmacy,
    BloodBank,
    Hospital,
    Inspector,
    Regulator,
    Admin,
}

impl From<RoleArg> for pb::Role {
    fn from(role: RoleArg) -> pb::Role {
        match role {
            RoleArg::Manufacturer => pb::Role::MANUFACTURER,
            RoleArg::Distributor => pb::Role::DISTRIBUTOR,
            RoleArg::Carrier => pb::Role::CARRIER,
            RoleArg::Pharmacy => pb::Role::PHARMACY,
            RoleArg::BloodBank => pb::Role::BLOOD_BANK,
            RoleArg::Hospital => pb::Role::HOSPITAL,
            RoleArg::Inspector => pb::Role::INSPECTOR,
            RoleArg::Regulator => pb::Role::REGULATOR,
            RoleArg::Admin => pb::Role::ADMIN,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organisation (network admins only).
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<RoleArg>,
    },
    /// Add a site (GLN) to an organisation.
    AddSite {
        #[arg(long)]
        org: String,
        #[arg(long)]
        gln: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        address: String,
    },
    /// Add an agent (public key) to an organisation.
    AddAgent {
        #[arg(long)]
        org: String,
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<RoleArg>,
    },
    /// Revoke an agent's key; a revoked key can do nothing.
    RevokeAgent {
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        reason: String,
    },
    /// Authorise a sensor gateway key to submit readings for the organisation's devices.
    AuthorizeGateway {
        #[arg(long)]
        org: String,
        #[arg(long)]
        public_key: String,
        #[arg(long, default_value = "gateway")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Register a temperature logger to an organisation.
    Register {
        #[arg(long)]
        id: String,
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "generic logger")]
        model: String,
        /// Calibration due date, YYYYMMDD.
        #[arg(long)]
        calibration_due: u32,
        #[arg(long, default_value = "")]
        public_key: String,
    },
    /// Revoke a logger.
    Revoke {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Attach a logger to a shipment.
    Attach {
        #[arg(long)]
        shipment: String,
        #[arg(long)]
        device: String,
    },
    /// Detach a logger from a shipment.
    Detach {
        #[arg(long)]
        shipment: String,
        #[arg(long)]
        device: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LotCommand {
    /// Register a lot (manufacturers).
    Create(LotSpec),
    /// Register many lots from a CSV file (RFC 4180: quote a field holding a comma).
    ///
    /// Columns: gtin,lot,expiry,quantity,profile,site_gln,product_name[,serials]
    /// (serials separated by ';'). An optional first row starting with `gtin` is
    /// the header and fixes the number of columns; `#` lines and blank lines are
    /// skipped. The whole file is checked first: if any row is bad, nothing is
    /// submitted and every bad row is listed with its line number. Then each row
    /// is its own batch, so a row the ledger refuses does not sink the others.
    Import { csv: PathBuf },
    /// Quarantine a lot (inspectors, regulators).
    Quarantine(LotStatusArgs),
    /// Release a quarantined lot (inspectors, regulators).
    Release(LotStatusArgs),
    /// Recall a lot (its manufacturer or a regulator).
    Recall(LotStatusArgs),
    /// Record the destruction of a lot.
    Destroy(LotStatusArgs),
}

#[derive(Args, Debug, Clone)]
pub struct LotSpec {
    #[arg(long)]
    pub gtin: String,
    #[arg(long)]
    pub lot: String,
    /// Expiry date, YYYYMMDD.
    #[arg(long)]
    pub expiry: u32,
    #[arg(long)]
    pub quantity: u64,
    /// Serial numbers of the packs (repeat the flag).
    #[arg(long = "serial")]
    pub serials: Vec<String>,
    #[arg(long, value_enum, default_value = "refrigerated")]
    pub profile: ProfilePreset,
    #[command(flatten)]
    pub stability: StabilityArgs,
    /// Site (GLN) where the lot is now.
    #[arg(long)]
    pub site: String,
    /// Product name as printed on the pack.
    #[arg(long)]
    pub product: String,
}

#[derive(Args, Debug, Clone)]
pub struct LotStatusArgs {
    #[arg(long)]
    pub gtin: String,
    #[arg(long)]
    pub lot: String,
    #[arg(long)]
    pub reason: String,
}

#[derive(Subcommand, Debug)]
pub enum ShipmentCommand {
    /// Create a shipment of lots (GTIN/LOT) and/or blood units you hold.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// A lot as GTIN/LOT (repeat).
        #[arg(long = "lot")]
        lots: Vec<String>,
        /// A blood unit's donation id (repeat): 13 characters, as typed from the
        /// label with its check character, or as scanned (`=A99992612345600`).
        #[arg(long = "blood-unit")]
        blood_units: Vec<String>,
        /// Transport profile; default: the strictest of the goods' profiles.
        #[arg(long, value_enum)]
        profile: Option<ProfilePreset>,
    },
    /// Propose handing the shipment to another organisation (you must hold it).
    ///
    /// If the receiver owns the shipment's destination site and `--at` is that
    /// site, accepting delivers the shipment. Handed over anywhere else, the
    /// receiver holds it IN_TRANSIT and closes it on arrival with
    /// `coldchain shipment deliver`.
    Propose {
        #[arg(long)]
        id: String,
        #[arg(long)]
        to_org: String,
        /// GLN of the hand-off site.
        #[arg(long)]
        at: String,
    },
    /// Accept a hand-off proposed to your organisation.
    Accept {
        #[arg(long)]
        id: String,
        /// Take the goods knowingly into quarantine (needed when they are compromised).
        #[arg(long)]
        into_quarantine: bool,
    },
    /// Reject a hand-off proposed to your organisation; the holder keeps the shipment.
    Reject {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your own pending hand-off proposal (the shipment itself stays open).
    Cancel {
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "cancelled by proposer")]
        reason: String,
    },
    /// Close a shipment you hold as DELIVERED at its destination site, one of your own.
    ///
    /// For a receiver that took the goods before the destination (for example at
    /// the sender's dock), or a transfer between two of your own sites. No hand-off
    /// may be pending. Compromised goods need --into-quarantine.
    Deliver {
        #[arg(long)]
        id: String,
        /// GLN of the destination site (must be the shipment's --to).
        #[arg(long)]
        at: String,
        /// Take the goods knowingly into quarantine (needed when they are compromised).
        #[arg(long)]
        into_quarantine: bool,
    },
    /// End a shipment you hold without delivering it (no hand-off may be pending).
    ///
    /// Its goods leave the shipment where they are (the last accepted hand-off
    /// site, or the origin) and its loggers are detached. Shipments of an
    /// emergency blood request cannot be cancelled; they end by delivery.
    CancelShipment {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ComponentArg {
    RedCells,
    WholeBlood,
    Platelets,
    Plasma,
    Cryo,
}

impl From<ComponentArg> for pb::BloodComponent {
    fn from(c: ComponentArg) -> pb::BloodComponent {
        match c {
            ComponentArg::RedCells => pb::BloodComponent::RED_CELLS,
            ComponentArg::WholeBlood => pb::BloodComponent::WHOLE_BLOOD,
            ComponentArg::Platelets => pb::BloodComponent::PLATELETS,
            ComponentArg::Plasma => pb::BloodComponent::FRESH_FROZEN_PLASMA,
            ComponentArg::Cryo => pb::BloodComponent::CRYOPRECIPITATE,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PriorityArg {
    Routine,
    Urgent,
    Emergency,
}

/// Parses a blood group such as `O-`, `AB+`, `a pos`.
pub fn parse_group(text: &str) -> Result<(pb::AboGroup, pb::RhD)> {
    let t = text.trim().to_ascii_uppercase().replace(' ', "");
    let (abo, rest) = if let Some(rest) = t.strip_prefix("AB") {
        (pb::AboGroup::AB, rest)
    } else if let Some(rest) = t.strip_prefix('A') {
        (pb::AboGroup::A, rest)
    } else if let Some(rest) = t.strip_prefix('B') {
        (pb::AboGroup::B, rest)
    } else if let Some(rest) = t.strip_prefix('O') {
        (pb::AboGroup::O, rest)
    } else {
        bail!("blood group {text:?} is not one of O-, O+, A-, A+, B-, B+, AB-, AB+");
    };
    let rh = match rest {
        "-" | "NEG" | "−" => pb::RhD::NEGATIVE,
        "+" | "POS" => pb::RhD::POSITIVE,
        _ => bail!("blood group {text:?} needs an Rh sign: for example O- or AB+"),
    };
    Ok((abo, rh))
}

#[derive(Subcommand, Debug)]
pub enum BloodCommand {
    /// Register a blood unit held by your blood bank, from its ISBT 128 label
    /// scans (--scan) and/or flags; a value given both ways must agree.
    Register {
        /// ISBT 128 donation identification number: 13 characters
        /// (A999926123456), as typed from the label with flags and/or the boxed
        /// check character (A9999 26 123456 00 T), or as scanned (=A99992612345600).
        #[arg(long)]
        din: Option<String>,
        /// What a label scanner reads from the bag (repeat, or several in one
        /// argument): DIN =A99992612345600, product code =<E0398V00, blood group
        /// =%9500, expiry &>0271232359. Quote it: < > & are special to the shell.
        #[arg(long = "scan")]
        scans: Vec<String>,
        /// The component; needed unless a product code is scanned.
        #[arg(long, value_enum)]
        component: Option<ComponentArg>,
        /// ABO/Rh group, e.g. O- or AB+; needed unless a blood group is scanned.
        #[arg(long)]
        group: Option<String>,
        #[arg(long, default_value_t = 280)]
        volume_ml: u32,
        /// Expiry date, YYYYMMDD; needed unless an expiry is scanned.
        #[arg(long)]
        expiry: Option<u32>,
        #[arg(long)]
        site: String,
    },
    /// Read a bag's ISBT 128 label scans and print what they say (DIN as printed,
    /// with its check character; component; ABO/RhD; expiry). Nothing is sent.
    Label {
        /// Scanned bar codes, e.g. '=A99992612345600' '=<E0398V00' '=%9500'.
        #[arg(required = true)]
        scans: Vec<String>,
    },
    /// File an emergency request (hospitals).
    Request {
        #[arg(long)]
        id: String,
        #[arg(long, value_enum)]
        component: ComponentArg,
        /// The patient's ABO/Rh group.
        #[arg(long)]
        group: String,
        #[arg(long)]
        units: u32,
        /// Needed within this many minutes from now.
        #[arg(long, default_value_t = 60)]
        needed_in_minutes: u64,
        #[arg(long, value_enum, default_value = "emergency")]
        priority: PriorityArg,
        /// The hospital site's GLN.
        #[arg(long)]
        hospital: String,
    },
    /// Offer specific units for a request (blood banks).
    Offer {
        #[arg(long)]
        request: String,
        #[arg(long)]
        offer: String,
        /// A unit's DIN (repeat): 13 characters, typed with its check
        /// character, or scanned (=A99992612345600).
        #[arg(long = "unit", required = true)]
        units: Vec<String>,
    },
    /// Accept an offer; opens a shipment of the offered units.
    Accept {
        #[arg(long)]
        request: String,
        #[arg(long)]
        offer: String,
        #[arg(long)]
        shipment: String,
    },
    /// Confirm delivery; closes the request.
    Deliver {
        #[arg(long)]
        request: String,
    },
    /// Withdraw your hospital's request: while it is open (offered units are
    /// released), or when its accepted delivery will not come (refused at the
    /// door, not sent); the bank then ends the shipment with
    /// `coldchain shipment cancel-shipment`. A new need is a new request.
    Cancel {
        #[arg(long)]
        request: String,
        /// Why (kept on the ledger with the request).
        #[arg(long)]
        reason: String,
    },
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lot_ref(gtin: &str, lot: &str) -> Result<pb::LotRef> {
    let mut reference = pb::LotRef::new();
    reference.set_gtin(identifiers::normalize_gtin(gtin)?);
    reference.set_lot(lot.to_string());
    Ok(reference)
}

/// Builds a registry transaction spec for an action.
pub fn registry_spec(
    action: pb::RegistryPayload_oneof_action,
    at_s: u64,
) -> Result<TransactionSpec> {
    let mut payload = pb::RegistryPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    Ok(registry::transaction_spec(&payload)?)
}

/// Builds a custody transaction spec for an action.
pub fn custody_spec(action: pb::CustodyPayload_oneof_action, at_s: u64) -> Result<TransactionSpec> {
    let mut payload = pb::CustodyPayload::new();
    payload.set_timestamp_s(at_s);
    payload.action = Some(action);
    Ok(custody::transaction_spec(&payload)?)
}

pub fn org_spec(command: &OrgCommand, at_s: u64) -> Result<TransactionSpec> {
    use pb::RegistryPayload_oneof_action as A;
    Ok(match command {
        OrgCommand::Create { id, name, roles } => {
            let mut a = pb::CreateOrganization::new();
            a.set_org_id(id.clone());
            a.set_name(name.clone());
            a.set_roles(roles.iter().map(|r| (*r).into()).collect());
            registry_spec(A::create_organization(a), at_s)?
        }
        OrgCommand::AddSite {
            org,
            gln,
            name,
            address,
        } => {
            identifiers::check_gln(gln)?;
            let mut a = pb::AddSite::new();
            a.set_org_id(org.clone());
            a.set_gln(gln.clone());
            a.set_name(name.clone());
            a.set_address(address.clone());
            registry_spec(A::add_site(a), at_s)?
        }
        OrgCommand::AddAgent {
            org,
            public_key,
            name,
            roles,
        } => {
            let mut a = pb::AddAgent::new();
            a.set_org_id(org.clone());
            a.set_public_key(public_key.clone());
            a.set_name(name.clone());
            a.set_roles(roles.iter().map(|r| (*r).into()).collect());
            registry_spec(A::add_agent(a), at_s)?
        }
        OrgCommand::RevokeAgent { public_key, reason } => {
            let mut a = pb::RevokeAgent::new();
            a.set_public_key(public_key.clone());
            a.set_reason(reason.clone());
            registry_spec(A::revoke_agent(a), at_s)?
        }
        OrgCommand::AuthorizeGateway {
            org,
            public_key,
            name,
        } => {
            let mut a = pb::AuthorizeGateway::new();
            a.set_org_id(org.clone());
            a.set_public_key(public_key.clone());
            a.set_name(name.clone());
            registry_spec(A::authorize_gateway(a), at_s)?
        }
    })
}

pub fn device_spec(command: &DeviceCommand, at_s: u64) -> Result<TransactionSpec> {
    use pb::CustodyPayload_oneof_action as C;
    use pb::RegistryPayload_oneof_action as A;
    Ok(match command {
        DeviceCommand::Register {
            id,
            org,
            model,
            calibration_due,
            public_key,
        } => {
            let mut a = pb::RegisterDevice::new();
            a.set_device_id(id.clone());
            a.set_org_id(org.clone());
            a.set_model(model.clone());
            a.set_calibration_due_date(*calibration_due);
            a.set_public_key(public_key.clone());
            registry_spec(A::register_device(a), at_s)?
        }
        DeviceCommand::Revoke { id, reason } => {
            let mut a = pb::RevokeDevice::new();
            a.set_device_id(id.clone());
            a.set_reason(reason.clone());
            registry_spec(A::revoke_device(a), at_s)?
        }
        DeviceCommand::Attach { shipment, device } => {
            let mut a = pb::AttachDevice::new();
            a.set_shipment_id(shipment.clone());
            a.set_device_id(device.clone());
            custody_spec(C::attach_device(a), at_s)?
        }
        DeviceCommand::Detach { shipment, device } => {
            let mut a = pb::DetachDevice::new();
            a.set_shipment_id(shipment.clone());
            a.set_device_id(device.clone());
            custody_spec(C::detach_device(a), at_s)?
        }
    })
}

pub fn create_lot_spec(spec: &LotSpec, at_s: u64) -> Result<TransactionSpec> {
    let mut a = pb::CreateLot::new();
    a.set_gtin(identifiers::normalize_gtin(&spec.gtin)?);
    a.set_lot(spec.lot.clone());
    a.set_expiry_date(spec.expiry);
    a.set_quantity(spec.quantity);
    a.set_serials(spec.serials.clone().into());
    let mut profile = spec.profile.profile();
    spec.stability.apply_to(&mut profile);
    a.set_profile(profile);
    a.set_site_gln(spec.site.clone());
    a.set_product_name(spec.product.clone());
    registry_spec(pb::RegistryPayload_oneof_action::create_lot(a), at_s)
}

pub fn lot_status_spec(
    args: &LotStatusArgs,
    status: pb::LotStatus,
    at_s: u64,
) -> Result<TransactionSpec> {
    let mut a = pb::ChangeLotStatus::new();
    a.set_lot(lot_ref(&args.gtin, &args.lot)?);
    a.set_status(status);
    a.set_reason(args.reason.clone());
    registry_spec(pb::RegistryPayload_oneof_action::change_lot_status(a), at_s)
}

pub fn shipment_spec(command: &ShipmentCommand, at_s: u64) -> Result<TransactionSpec> {
    use pb::CustodyPayload_oneof_action as C;
    Ok(match command {
        ShipmentCommand::Create {
            id,
            from,
            to,
            lots,
            blood_units,
            profile,
        } => {
            let mut a = pb::CreateShipment::new();
            a.set_shipment_id(id.clone());
            a.set_from_gln(from.clone());
            a.set_to_gln(to.clone());
            let mut refs = Vec::new();
            for item in lots {
                let Some((gtin, lot)) = item.split_once('/') else {
                    bail!("--lot {item:?} must be GTIN/LOT, for example 09501101530003/L2026A");
                };
                refs.push(lot_ref(gtin, lot)?);
            }
            a.set_lots(refs.into());
            let units = blood_units
                .iter()
                .map(|unit| ledger_din(unit))
                .collect::<Result<Vec<_>>>()?;
            a.set_blood_units(units.into());
            if let Some(preset) = profile {
                a.set_profile(preset.profile());
            }
            custody_spec(C::create_shipment(a), at_s)?
        }
        ShipmentCommand::Propose { id, to_org, at } => {
            let mut a = pb::ProposeHandoff::new();
            a.set_shipment_id(id.clone());
            a.set_to_org_id(to_org.clone());
            a.set_at_gln(at.clone());
            custody_spec(C::propose_handoff(a), at_s)?
        }
        ShipmentCommand::Accept {
            id,
            into_quarantine,
        } => {
            let mut a = pb::AcceptHandoff::new();
            a.set_shipment_id(id.clone());
            a.set_into_quarantine(*into_quarantine);
            custody_spec(C::accept_handoff(a), at_s)?
        }
        ShipmentCommand::Reject { id, reason } => {
            let mut a = pb::RejectHandoff::new();
            a.set_shipment_id(id.clone());
            a.set_reason(reason.clone());
            custody_spec(C::reject_handoff(a), at_s)?
        }
        ShipmentCommand::Cancel { id, reason } => {
            let mut a = pb::CancelHandoff::new();
            a.set_shipment_id(id.clone());
            a.set_reason(reason.clone());
            custody_spec(C::cancel_handoff(a), at_s)?
        }
        ShipmentCommand::Deliver {
            id,
            at,
            into_quarantine,
        } => {
            let mut a = pb::DeliverShipment::new();
            a.set_shipment_id(id.clone());
            a.set_at_gln(at.clone());
            a.set_into_quarantine(*into_quarantine);
            custody_spec(C::deliver_shipment(a), at_s)?
        }
        ShipmentCommand::CancelShipment { id, reason } => {
            let mut a = pb::CancelShipment::new();
            a.set_shipment_id(id.clone());
            a.set_reason(reason.clone());
            custody_spec(C::cancel_shipment(a), at_s)?
        }
    })
}

pub fn dispense_spec(gtin: &str, serial: &str, site: &str, at_s: u64) -> Result<TransactionSpec> {
    let mut a = pb::DispensePack::new();
    a.set_gtin(identifiers::normalize_gtin(gtin)?);
    a.set_serial(serial.to_string());
    a.set_site_gln(site.to_string());
    custody_spec(pb::CustodyPayload_oneof_action::dispense_pack(a), at_s)
}

pub fn blood_spec(command: &BloodCommand, at_s: u64) -> Result<TransactionSpec> {
    use pb::CustodyPayload_oneof_action as C;
    Ok(match command {
        BloodCommand::Register {
            din,
            scans,
            component,
            group,
            volume_ml,
            expiry,
            site,
        } => {
            let unit =
                unit_to_register(din.as_deref(), scans, *component, group.as_deref(), *expiry)?;
            let mut a = pb::RegisterBloodUnit::new();
            a.set_donation_id(unit.din);
            a.set_component(unit.component);
            a.set_abo(unit.abo);
            a.set_rh(unit.rh);
            a.set_volume_ml(*volume_ml);
            a.set_expiry_date(unit.expiry);
            a.set_site_gln(site.clone());
            registry_spec(
                pb::RegistryPayload_oneof_action::register_blood_unit(a),
                at_s,
            )?
        }
        BloodCommand::Request {
            id,
            component,
            group,
            units,
            needed_in_minutes,
            priority,
            hospital,
        } => {
            let (abo, rh) = parse_group(group)?;
            let mut a = pb::FileEmergencyRequest::new();
            a.set_request_id(id.clone());
            a.set_component((*component).into());
            a.set_abo(abo);
            a.set_rh(rh);
            a.set_units(*units);
            a.set_needed_by_s(at_s + needed_in_minutes * 60);
            a.set_priority(match priority {
                PriorityArg::Routine => pb::Priority::ROUTINE,
                PriorityArg::Urgent => pb::Priority::URGENT,
                PriorityArg::Emergency => pb::Priority::EMERGENCY,
            });
            a.set_hospital_gln(hospital.clone());
            custody_spec(C::file_emergency_request(a), at_s)?
        }
        BloodCommand::Offer {
            request,
            offer,
            units,
        } => {
            let mut a = pb::OfferBloodUnits::new();
            a.set_request_id(request.clone());
            a.set_offer_id(offer.clone());
            let units = units
                .iter()
                .map(|unit| ledger_din(unit))
                .collect::<Result<Vec<_>>>()?;
            a.set_donation_ids(units.into());
            custody_spec(C::offer_blood_units(a), at_s)?
        }
        BloodCommand::Accept {
            request,
            offer,
            shipment,
        } => {
            let mut a = pb::AcceptBloodOffer::new();
            a.set_request_id(request.clone());
            a.set_offer_id(offer.clone());
            a.set_shipment_id(shipment.clone());
            custody_spec(C::accept_blood_offer(a), at_s)?
        }
        BloodCommand::Deliver { request } => {
            let mut a = pb::ConfirmBloodDelivery::new();
            a.set_request_id(request.clone());
            custody_spec(C::confirm_blood_delivery(a), at_s)?
        }
        BloodCommand::Cancel { request, reason } => {
            let mut a = pb::CancelBloodRequest::new();
            a.set_request_id(request.clone());
            a.set_reason(reason.clone());
            custody_spec(C::cancel_blood_request(a), at_s)?
        }
        BloodCommand::Label { .. } => {
            bail!("`blood label` only reads scans; it sends nothing to the ledger")
        }
    })
}

/// The 13-character DIN the ledger keys a unit by, from what a person typed or
/// a scanner read (see `coldchain_processors::isbt128`). A 13-character id the
/// ledger accepted before ISBT 128 scans were read (facility code any 5 of
/// `A-Z 0-9`) still passes unchanged.
pub fn ledger_din(text: &str) -> Result<String> {
    match isbt128::parse_donation_number(text) {
        Ok(number) => Ok(number.din),
        Err(_) if identifiers::check_donation_id(text).is_ok() => Ok(text.to_string()),
        Err(e) => Err(e.into()),
    }
}

/// What `blood register` registers.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitToRegister {
    pub din: String,
    pub component: pb::BloodComponent,
    pub abo: pb::AboGroup,
    pub rh: pb::RhD,
    pub expiry: u32,
}

/// One value from a flag and/or a scan: both must agree; one is needed.
fn agreed<T: PartialEq + std::fmt::Debug>(
    flag: Option<T>,
    scanned: Option<T>,
    what: &str,
    how: &str,
) -> Result<T> {
    match (flag, scanned) {
        (Some(flag), Some(scanned)) if flag != scanned => {
            bail!("the {what} given by flag ({flag:?}) and the scanned label ({scanned:?}) differ; check the bag")
        }
        (Some(value), _) | (None, Some(value)) => Ok(value),
        (None, None) => bail!("no {what}: {how}"),
    }
}

/// Merges `blood register`'s flags with its label scans.
pub fn unit_to_register(
    din: Option<&str>,
    scans: &[String],
    component: Option<ComponentArg>,
    group: Option<&str>,
    expiry: Option<u32>,
) -> Result<UnitToRegister> {
    let label = isbt128::parse_scans(&scans.join(" "))?;
    let din = agreed(
        din.map(ledger_din).transpose()?,
        label.donation.map(|d| d.din),
        "donation number",
        "give --din, or --scan the DIN bar code (=A99992612345600)",
    )?;
    let component = agreed(
        component.map(pb::BloodComponent::from),
        label.product.map(|p| p.component),
        "component",
        "give --component, or --scan the product code (=<E0398V00)",
    )?;
    let (abo, rh) = agreed(
        group.map(parse_group).transpose()?,
        label.group,
        "blood group",
        "give --group (O-, AB+, ...), or --scan the blood group (=%9500)",
    )?;
    let expiry = agreed(
        expiry,
        label.expiry,
        "expiry",
        "give --expiry YYYYMMDD, or --scan the expiry (&>0271232359)",
    )?;
    Ok(UnitToRegister {
        din,
        component,
        abo,
        rh,
        expiry,
    })
}

/// `coldchain blood label`: what a bag's scans say, as the label prints it.
pub fn print_label(scans: &[String], json: bool) -> Result<()> {
    let label = isbt128::parse_scans(&scans.join(" "))?;
    let din = label.donation.as_ref();
    let product = label.product.as_ref();
    let group = label
        .group
        .map(|(abo, rh)| coldchain_processors::blood::BloodType::new(abo, rh).to_string());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "din": din.map(|d| &d.din),
                "flags": din.and_then(|d| d.flags.as_ref()),
                "check_character": din.map(|d| d.check_character().to_string()),
                "label_text": din.map(|d| d.label_text()),
                "product_code": product.map(|p| &p.code),
                "component": product.map(|p| format!("{:?}", p.component).to_lowercase()),
                "product_description": product.map(|p| p.description),
                "blood_type": group,
                "expiry_date": label.expiry,
            })
        );
        return Ok(());
    }
    if let Some(d) = din {
        println!("DIN          {}   (ledger id {})", d.label_text(), d.din);
    }
    if let Some(p) = product {
        let component = format!("{:?}", p.component)
            .to_lowercase()
            .replace('_', " ");
        println!(
            "product      {} {component}: {} (collection {}, division {})",
            p.code, p.description, p.collection, p.division
        );
    }
    if let Some(group) = group {
        println!("blood group  {group}");
    }
    if let Some(expiry) = label.expiry {
        println!("expiry       {expiry} (last whole day of use)");
    }
    Ok(())
}

/// Prints an outcome; returns an error (non-zero exit) for refusals.
pub fn report(outcome: &Outcome, what: &str, json: bool) -> Result<()> {
    if json {
        let value = match outcome {
            Outcome::Committed { batch_id } => {
                serde_json::json!({"status": "COMMITTED", "batch_id": batch_id, "action": what})
            }
            Outcome::Invalid { batch_id, reason } => {
                serde_json::json!({"status": "INVALID", "batch_id": batch_id, "action": what, "reason": reason})
            }
            Outcome::Pending { batch_id } => {
                serde_json::json!({"status": "PENDING", "batch_id": batch_id, "action": what})
            }
        };
        println!("{value}");
    }
    match outcome {
        Outcome::Committed { batch_id } => {
            if !json {
                println!("✔ {what}: committed (batch {})", &batch_id[..16.min(batch_id.len())]);
            }
            Ok(())
        }
        Outcome::Invalid { reason, .. } => bail!("{what} was refused by the ledger: {reason}"),
        Outcome::Pending { batch_id } => bail!(
            "{what}: not committed yet (batch {batch_id}); check later with GET /batch_statuses?id={batch_id}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scans(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_bags_scans_alone_register_the_unit() {
        let unit = unit_to_register(
            None,
            &scans(&["=A99992612345600", "=<E0398V00 =%9500", "&>0271232359"]),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            unit,
            UnitToRegister {
                din: "A999926123456".into(),
                component: pb::BloodComponent::RED_CELLS,
                abo: pb::AboGroup::O,
                rh: pb::RhD::NEGATIVE,
                expiry: 20270503,
            }
        );
    }

    #[test]
    fn flags_alone_register_as_before() {
        let unit = unit_to_register(
            Some("A999926000001"),
            &[],
            Some(ComponentArg::Platelets),
            Some("AB+"),
            Some(20281231),
        )
        .unwrap();
        assert_eq!(unit.din, "A999926000001");
        assert_eq!(unit.component, pb::BloodComponent::PLATELETS);
        assert_eq!((unit.abo, unit.rh), (pb::AboGroup::AB, pb::RhD::POSITIVE));
    }

    #[test]
    fn a_flag_that_contradicts_the_label_is_refused() {
        let err = unit_to_register(
            None,
            &scans(&["=A99992612345600 =<E0398V00 =%9500 &>0271232359"]),
            Some(ComponentArg::Platelets),
            None,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
        let err = unit_to_register(
            Some("A999926123457"),
            &scans(&["=A99992612345600"]),
            Some(ComponentArg::RedCells),
            Some("O-"),
            Some(20270101),
        )
        .unwrap_err();
        assert!(err.to_string().contains("donation number"), "{err}");
    }

    #[test]
    fn a_missing_value_names_the_flag_and_the_scan() {
        let err = unit_to_register(
            None,
            &scans(&["=A99992612345600 =<E0398V00"]),
            None,
            None,
            Some(20270101),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("--group") && err.to_string().contains("=%9500"),
            "{err}"
        );
    }

    #[test]
    fn dins_are_read_in_every_printed_and_scanned_form() {
        for text in [
            "A999926123456",
            "A999926123456T",
            "A9999 26 123456 00 T",
            "=A99992612345600",
        ] {
            assert_eq!(ledger_din(text).unwrap(), "A999926123456", "{text}");
        }
        // A 13-character id the ledger accepted before (facility code of any
        // 5 of A-Z 0-9) still passes unchanged.
        assert_eq!(ledger_din("0XY1226000001").unwrap(), "0XY1226000001");
        let err = ledger_din("A999926123456K").unwrap_err();
        assert!(err.to_string().contains("gives 'T'"), "{err}");
        assert!(ledger_din("nonsense").is_err());
    }
}
