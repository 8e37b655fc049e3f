//! Who is asking, and what they may read.
//!
//! Verification verdicts are public. Every other read needs a partner: either a
//! request signed with a registered participant key (headers
//! `X-Coldchain-Key`, `X-Coldchain-Timestamp` in unix seconds,
//! `X-Coldchain-Signature` = the Sawtooth-style secp256k1 signature over
//! [`signed_message`]) accepted within [`FRESHNESS_S`] of the server clock, or
//! `Authorization: Bearer <token>` with a token bound to such a key. The key
//! must belong to an unrevoked Agent on the ledger (as indexed); the agent's
//! organisation sees its own and its counterparties' data, plus the upstream
//! custody of goods it received ([`add_upstream`]); inspectors and regulators
//! see everything. This module decides; it does not serve.
use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{
    Agent, HandoffOutcome, Lot, Role, Shipment, ShipmentStatus,
};
use coldchain_processors::signing;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

use crate::error::ApiError;
use crate::index::{AuditEntry, IndexStore};
use crate::provenance::LotRecords;
use crate::records::load;

/// How far a signed request's timestamp may be from the server clock.
pub const FRESHNESS_S: u64 = 300;

/// The authentication headers a request carries (all optional).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub key: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub bearer: Option<String>,
}

/// An authenticated partner.
#[derive(Clone, Debug)]
pub struct Caller {
    pub public_key: String,
    pub org_id: String,
    pub roles: Vec<Role>,
}

impl Caller {
    /// Inspectors and regulators read everything.
    pub fn sees_everything(&self) -> bool {
        self.roles
            .iter()
            .any(|r| matches!(r, Role::INSPECTOR | Role::REGULATOR))
    }
}

/// The bytes a partner signs: method, path, raw query and timestamp, one per line.
pub fn signed_message(method: &str, path: &str, query: &str, timestamp: &str) -> String {
    format!(
        "{}\n{path}\n{query}\n{timestamp}",
        method.to_ascii_uppercase()
    )
}

/// SHA-256 of a token, as stored in the index.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random API token (64 hex characters).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Signed requests that may not be used twice (`POST /api/v1/tokens`: a
/// replayed one would mint another token for the signer). Each is remembered,
/// by SHA-256 of its key and signed message (not of the signature, which an
/// attacker could re-encode), until its timestamp falls out of the
/// [`FRESHNESS_S`] window, after which the freshness check refuses it anyway.
/// Memory is bounded: at [`ReplayGuard::CAPACITY`] unexpired requests new ones
/// are refused with 429 until old ones expire.
#[derive(Default)]
pub struct ReplayGuard {
    seen: std::sync::Mutex<SeenRequests>,
}

#[derive(Default)]
struct SeenRequests {
    digests: std::collections::HashSet<[u8; 32]>,
    /// (expiry in unix seconds, digest), oldest expiry first.
    expiries: std::collections::BTreeSet<(u64, [u8; 32])>,
}

impl ReplayGuard {
    /// Most signed requests remembered at once (about 100 bytes each).
    pub const CAPACITY: usize = 100_000;

    /// Accepts a signed request once: refuses (401 `replayed_request`) one
    /// already accepted while its timestamp is still fresh.
    pub fn admit(
        &self,
        key: &str,
        message: &str,
        timestamp_s: u64,
        now_s: u64,
    ) -> Result<(), ApiError> {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(key.as_bytes())
            .chain_update(b"\n")
            .chain_update(message.as_bytes())
            .finalize()
            .into();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(&(expiry, old)) = seen.expiries.first() {
            if expiry >= now_s {
                break;
            }
            seen.expiries.pop_first();
            seen.digests.remove(&old);
        }
        if seen.digests.contains(&digest) {
            return Err(ApiError {
                status: 401,
                code: "replayed_request",
                message: "this signed request was already used; sign a new one (a new X-Coldchain-Timestamp, or add a nonce=<any unique value> query parameter to make several in one second)".into(),
            });
        }
        if seen.digests.len() >= Self::CAPACITY {
            let wait = seen
                .expiries
                .first()
                .map(|(expiry, _)| expiry.saturating_sub(now_s) + 1)
                .unwrap_or(1);
            return Err(ApiError {
                status: 429,
                code: "too_many_signed_requests",
                message: format!(
                    "{} signed token requests in the last {FRESHNESS_S} s; try again in {wait} s",
                    Self::CAPACITY
                ),
            });
        }
        seen.digests.insert(digest);
        seen.expiries
            .insert((timestamp_s.saturating_add(FRESHNESS_S), digest));
        Ok(())
    }
}

/// Checks a signed request and returns the signer's public key.
pub fn check_signature(
    credentials: &Credentials,
    method: &str,
    path: &str,
    query: &str,
    now_s: u64,
) -> Result<String, ApiError> {
    let (Some(key), Some(timestamp), Some(signature)) = (
        &credentials.key,
        &credentials.timestamp,
        &credentials.signature,
    ) else {
        return Err(ApiError::unauthorized(
            "this endpoint needs a partner key: send X-Coldchain-Key, X-Coldchain-Timestamp and X-Coldchain-Signature, or Authorization: Bearer <token>".into(),
        ));
    };
    let at: u64 = timestamp
        .parse()
        .map_err(|_| ApiError::unauthorized("X-Coldchain-Timestamp must be unix seconds".into()))?;
    if at.abs_diff(now_s) > FRESHNESS_S {
        return Err(ApiError::unauthorized(format!(
            "signed request timestamp {at} is more than {FRESHNESS_S} s from the server clock ({now_s}); sign again with the current time"
        )));
    }
    let message = signed_message(method, path, query, timestamp);
    match signing::verify(key, message.as_bytes(), signature) {
        Ok(true) => Ok(key.clone()),
        Ok(false) => Err(ApiError::unauthorized("X-Coldchain-Signature does not match the request (method, path, query, timestamp) for this key".into())),
        Err(error) => Err(ApiError::unauthorized(format!("bad signature headers: {error}"))),
    }
}

/// Resolves the caller's key (signature or token) to a registered, unrevoked agent.
pub async fn authenticate(
    index: &dyn IndexStore,
    credentials: &Credentials,
    method: &str,
    path: &str,
    query: &str,
    now_s: u64,
) -> Result<Caller, ApiError> {
    let public_key = match &credentials.bearer {
        Some(token) => index
            .token_owner(&token_digest(token))
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the API token is not known; create one with POST /api/v1/tokens".into(),
                )
            })?,
        None => check_signature(credentials, method, path, query, now_s)?,
    };
    let agent = load::<Agent>(index, RecordKind::Agent, &public_key)
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "key {public_key} is not a registered agent on the ledger"
            ))
        })?
        .record;
    let caller = Caller {
        public_key,
        org_id: agent.get_org_id().to_string(),
        roles: agent.get_roles().to_vec(),
    };
    if agent.get_revoked() {
        let refusal = ApiError::forbidden(format!(
            "agent {} was revoked: {}",
            caller.public_key,
            agent.get_revoke_reason()
        ));
        return Err(refuse(
            index,
            &caller,
            method,
            path,
            "agent revoked",
            refusal,
            now_s,
        )
        .await);
    }
    Ok(caller)
}

/// Organisations party to a shipment: custodian and both sides of every hand-off.
pub fn shipment_parties(shipment: &Shipment) -> Vec<&str> {
    let mut parties = vec![shipment.get_custodian_org_id()];
    for handoff in shipment
        .get_handoffs()
        .iter()
        .chain(shipment.pending.as_ref())
    {
        parties.push(handoff.get_from_org_id());
        parties.push(handoff.get_to_org_id());
    }
    parties
}

/// The caller may read the lot when its organisation made it, holds it, or was
/// a party to any shipment that carried it.
pub fn may_read_lot(caller: &Caller, records: &LotRecords) -> bool {
    let org = caller.org_id.as_str();
    let lot = &records.lot.record;
    caller.sees_everything()
        || lot.get_manufacturer_org_id() == org
        || lot.get_custodian_org_id() == org
        || records
            .shipments
            .iter()
            .any(|s| shipment_parties(&s.record).contains(&org))
}

/// The caller may read a shipment when its organisation is a party to it.
pub fn may_read_shipment(caller: &Caller, shipment: &Shipment) -> bool {
    caller.sees_everything() || shipment_parties(shipment).contains(&caller.org_id.as_str())
}

/// The caller may see this shipment of a lot *directly*: a party to the
/// shipment, the lot's maker, or an inspector or regulator. Being party to
/// another shipment of the lot is not enough by itself: a pharmacy that once
/// held the lot must not see where it went next. [`visible_shipments`] adds
/// what came before.
pub fn may_read_lot_shipment(caller: &Caller, lot: &Lot, shipment: &Shipment) -> bool {
    lot.get_manufacturer_org_id() == caller.org_id || may_read_shipment(caller, shipment)
}

/// Who sent a shipment on, and when: the sender of its first hand-off (its
/// custodian while it has none), at its creation (or, if that is unset, its
/// first hand-off's proposal).
fn sent_on(shipment: &Shipment) -> (&str, u64) {
    let first = shipment
        .get_handoffs()
        .first()
        .or(shipment.pending.as_ref());
    let org = first.map_or(shipment.get_custodian_org_id(), |h| h.get_from_org_id());
    let at = match shipment.get_created_at_s() {
        0 => first.map_or(0, |h| h.get_proposed_at_s()),
        at => at,
    };
    (org, at)
}

/// Adds to `seen` (shipment ids) every shipment of `shipments` upstream of one
/// already in it, and so on until nothing is left to add. U is upstream of S
/// when the goods S carries on were in U before, at or before S was created:
/// either one of U's hand-offs was accepted (plainly or into quarantine) by the
/// organisation that sent S on (U brought it the goods), or U was refused at
/// a receiver's door and then cancelled while the organisation that sent S on
/// held it ([`refused_back_to`]: the goods travelled to the refusing dock and
/// back, and their temperatures on that trip matter to whoever receives them
/// later; issue 12's decision). Why: a receiver's own question is where the
/// goods it received have been and how cold they were. Legs that left the
/// sender after S began, or went from it to someone else and stayed there
/// (siblings), are not upstream and stay hidden. Who refused an upstream leg
/// is withheld from those who see it only as upstream
/// ([`withhold_refusing_party`]).
pub fn add_upstream(shipments: &[&Shipment], seen: &mut BTreeSet<String>) {
    let mut todo: Vec<&Shipment> = shipments
        .iter()
        .copied()
        .filter(|s| seen.contains(s.get_shipment_id()))
        .collect();
    while let Some(shipment) = todo.pop() {
        let (sender, at) = sent_on(shipment);
        for upstream in shipments {
            let delivered_to_sender = upstream.get_handoffs().iter().any(|h| {
                h.get_to_org_id() == sender
                    && h.get_decided_at_s() <= at
                    && matches!(
                        h.get_outcome(),
                        HandoffOutcome::ACCEPTED | HandoffOutcome::ACCEPTED_INTO_QUARANTINE
                    )
            });
            let came_back = upstream.get_shipment_id() != shipment.get_shipment_id()
                && refused_back_to(upstream, sender, at);
            if (delivered_to_sender || came_back)
                && seen.insert(upstream.get_shipment_id().to_string())
            {
                todo.push(upstream);
            }
        }
    }
}

/// The shipment was refused at a receiver's door (a rejected hand-off) and
/// then cancelled by `org`, its holder, at or before `at`: the goods it
/// carried went back into `org`'s hands after the trip.
fn refused_back_to(shipment: &Shipment, org: &str, at: u64) -> bool {
    shipment.get_status() == ShipmentStatus::CANCELLED
        && shipment.get_custodian_org_id() == org
        && shipment.get_closed_at_s() <= at
        && has_refusal(shipment)
}

fn has_refusal(shipment: &Shipment) -> bool {
    shipment
        .get_handoffs()
        .iter()
        .any(|h| h.get_outcome() == HandoffOutcome::REJECTED)
}

/// What a refused hand-off says in place of its reason to those who see the
/// shipment only as upstream of their own.
pub const REFUSED_AT_THE_DOCK: &str = "refused at the receiving dock";

/// Blanks who refused the shipment's goods, and where: the receiver and site
/// of every rejected hand-off, the reason they gave (free text, which may name
/// them) replaced by [`REFUSED_AT_THE_DOCK`], and the shipment's destination
/// (the refusing party's dock). The thermal record and readings stay: they
/// are what a later receiver needs.
pub fn withhold_refusing_party(shipment: &mut Shipment) {
    if !has_refusal(shipment) {
        return;
    }
    for handoff in shipment.mut_handoffs().iter_mut() {
        if handoff.get_outcome() == HandoffOutcome::REJECTED {
            handoff.clear_to_org_id();
            handoff.clear_at_gln();
            handoff.set_reason(REFUSED_AT_THE_DOCK.to_string());
        }
    }
    shipment.clear_to_gln();
}

/// The ids of the lot's shipments the caller may see (hand-offs, sites,
/// readings and thermal record): those [`may_read_lot_shipment`] allows and
/// everything upstream of them ([`add_upstream`]).
pub fn visible_shipments(caller: &Caller, records: &LotRecords) -> BTreeSet<String> {
    let lot = &records.lot.record;
    let shipments: Vec<&Shipment> = records.shipments.iter().map(|s| &s.record).collect();
    let mut seen = shipments
        .iter()
        .filter(|s| may_read_lot_shipment(caller, lot, s))
        .map(|s| s.get_shipment_id().to_string())
        .collect();
    add_upstream(&shipments, &mut seen);
    seen
}

/// The shipment that brought the lot to its current holder (or carries it now).
fn holder_shipment(records: &LotRecords) -> Option<&Shipment> {
    let lot = &records.lot.record;
    let shipments = records.shipments.iter().map(|s| &s.record);
    if !lot.get_shipment_id().is_empty() {
        return shipments
            .clone()
            .find(|s| s.get_shipment_id() == lot.get_shipment_id());
    }
    shipments
        .filter_map(|s| {
            s.get_handoffs()
                .iter()
                .filter(|h| {
                    h.get_to_org_id() == lot.get_custodian_org_id()
                        && matches!(
                            h.get_outcome(),
                            HandoffOutcome::ACCEPTED | HandoffOutcome::ACCEPTED_INTO_QUARANTINE
                        )
                })
                .map(|h| h.get_decided_at_s())
                .max()
                .map(|at| (at, s))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, s)| s)
}

/// Narrows a lot the caller may read to what it may see: only the shipments
/// [`visible_shipments`] allows (in their index order), and the current holder
/// and site only when the caller is the maker, the holder, an inspector or
/// regulator, or a party to the shipment that brought the lot there (otherwise
/// they are blanked and `holder_withheld` is set). Seeing a shipment only as
/// upstream of one's own does not reveal the holder: upstream legs are the
/// goods' past, the holder is where they went next. Nor does it reveal who
/// refused an upstream leg at their door ([`withhold_refusing_party`]).
pub fn restrict_to_caller(caller: &Caller, mut records: LotRecords) -> LotRecords {
    let org = caller.org_id.as_str();
    let lot = &records.lot.record;
    let holder_visible = caller.sees_everything()
        || lot.get_manufacturer_org_id() == org
        || lot.get_custodian_org_id() == org
        || holder_shipment(&records).is_some_and(|s| shipment_parties(s).contains(&org));
    let visible = visible_shipments(caller, &records);
    records
        .shipments
        .retain(|s| visible.contains(s.record.get_shipment_id()));
    // Shipments seen only as upstream of the caller's own: who refused them is
    // not the caller's business (their goods' temperatures are).
    let lot = records.lot.record.clone();
    for found in &mut records.shipments {
        if !caller.sees_everything() && !may_read_lot_shipment(caller, &lot, &found.record) {
            withhold_refusing_party(&mut found.record);
        }
    }
    if !holder_visible {
        records.lot.record.clear_custodian_org_id();
        records.lot.record.clear_site_gln();
        records.holder_withheld = true;
    }
    records
}

/// Records a read of restricted data.
pub async fn audit(
    index: &dyn IndexStore,
    caller: &Caller,
    method: &str,
    path: &str,
    subject: &str,
    now_s: u64,
) -> Result<(), ApiError> {
    index
        .audit(AuditEntry {
            at_s: now_s,
            public_key: caller.public_key.clone(),
            org_id: caller.org_id.clone(),
            method: method.to_string(),
            path: path.to_string(),
            subject: subject.to_string(),
            status: 200,
        })
        .await?;
    Ok(())
}

/// Records a refused read of restricted data by a registered agent (its key
/// proven by signature or token) and returns the refusal to answer with.
/// Refusals of unproven or unregistered keys are not written: the key they
/// name proves nothing, and anyone could grow the log with them.
pub async fn refuse(
    index: &dyn IndexStore,
    caller: &Caller,
    method: &str,
    path: &str,
    subject: &str,
    refusal: ApiError,
    now_s: u64,
) -> ApiError {
    let entry = AuditEntry {
        at_s: now_s,
        public_key: caller.public_key.clone(),
        org_id: caller.org_id.clone(),
        method: method.to_string(),
        path: path.to_string(),
        subject: format!("refused: {subject}"),
        status: refusal.status,
    };
    match index.audit(entry).await {
        Ok(()) => refusal,
        // A refusal that cannot be audited is still a refusal; say why.
        Err(error) => ApiError::from(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldchain_processors::signing::Signer;

    fn signed(signer: &Signer, at: u64) -> Credentials {
        let ts = at.to_string();
        Credentials {
            key: Some(signer.public_key().to_string()),
            signature: Some(signer.sign(signed_message("GET", "/api/v1/x", "a=1", &ts).as_bytes())),
            timestamp: Some(ts),
            bearer: None,
        }
    }

    #[test]
    fn fresh_signed_request_names_its_key() {
        let signer = Signer::generate();
        let key = check_signature(&signed(&signer, 1000), "GET", "/api/v1/x", "a=1", 1100).unwrap();
        assert_eq!(key, signer.public_key());
    }

    #[test]
    fn stale_tampered_or_unsigned_requests_are_refused() {
        let signer = Signer::generate();
        assert_eq!(
            check_signature(
                &signed(&signer, 1000),
                "GET",
                "/api/v1/x",
                "a=1",
                1000 + FRESHNESS_S + 1
            )
            .unwrap_err()
            .status,
            401
        );
        assert!(check_signature(&signed(&signer, 1000), "GET", "/api/v1/x", "a=2", 1000).is_err());
        assert!(check_signature(&signed(&signer, 1000), "GET", "/api/v1/y", "a=1", 1000).is_err());
        assert!(check_signature(&Credentials::default(), "GET", "/api/v1/x", "", 1000).is_err());
    }

    #[test]
    fn a_signed_request_is_admitted_once_while_fresh() {
        let guard = ReplayGuard::default();
        let message = signed_message("POST", "/api/v1/tokens", "label=a", "1000");
        guard.admit("k1", &message, 1000, 1000).unwrap();
        let replay = guard
            .admit("k1", &message, 1000, 1000 + FRESHNESS_S)
            .unwrap_err();
        assert_eq!((replay.status, replay.code), (401, "replayed_request"));
        // Another key or another message is another request.
        guard.admit("k2", &message, 1000, 1000).unwrap();
        let other = signed_message("POST", "/api/v1/tokens", "label=a&nonce=2", "1000");
        guard.admit("k1", &other, 1000, 1000).unwrap();
        // Once out of the window it is forgotten (the freshness check refuses it).
        guard.admit("k9", "x", 2000, 2000).unwrap();
        let seen = guard.seen.lock().unwrap();
        assert_eq!(seen.digests.len(), 1);
        assert_eq!(seen.expiries.len(), 1);
    }

    #[test]
    fn the_replay_guard_is_bounded() {
        let guard = ReplayGuard::default();
        for i in 0..ReplayGuard::CAPACITY {
            guard.admit("k", &i.to_string(), 1000, 1000).unwrap();
        }
        let full = guard.admit("k", "one more", 1000, 1000).unwrap_err();
        assert_eq!(full.status, 429);
        // When they expire there is room again.
        guard.admit("k", "later", 1400, 1400).unwrap();
        assert_eq!(guard.seen.lock().unwrap().digests.len(), 1);
    }

    #[test]
    fn shipment_parties_include_both_sides_of_hand_offs() {
        let mut shipment = Shipment::new();
        shipment.set_custodian_org_id("carrier".into());
        let mut handoff = coldchain_processors::messages::coldchain::Handoff::new();
        handoff.set_from_org_id("maker".into());
        handoff.set_to_org_id("carrier".into());
        shipment.mut_handoffs().push(handoff);
        let caller = |org: &str| Caller {
            public_key: String::new(),
            org_id: org.into(),
            roles: vec![Role::PHARMACY],
        };
        assert!(may_read_shipment(&caller("maker"), &shipment));
        assert!(!may_read_shipment(&caller("stranger"), &shipment));
        let regulator = Caller {
            public_key: String::new(),
            org_id: "agency".into(),
            roles: vec![Role::REGULATOR],
        };
        assert!(may_read_shipment(&regulator, &shipment));
    }

    fn shipment(id: &str, created: u64, legs: &[(&str, &str, u64, HandoffOutcome)]) -> Shipment {
        let mut shipment = Shipment::new();
        shipment.set_shipment_id(id.into());
        shipment.set_created_at_s(created);
        shipment.set_custodian_org_id(legs.first().map_or("pharmacy-a", |l| l.0).into());
        for &(from, to, at, outcome) in legs {
            let mut handoff = coldchain_processors::messages::coldchain::Handoff::new();
            handoff.set_from_org_id(from.into());
            handoff.set_to_org_id(to.into());
            handoff.set_proposed_at_s(at - 5);
            handoff.set_decided_at_s(at);
            handoff.set_outcome(outcome);
            shipment.mut_handoffs().push(handoff);
        }
        shipment
    }

    #[test]
    fn upstream_follows_the_goods_back_not_to_siblings() {
        use HandoffOutcome::{ACCEPTED, ACCEPTED_INTO_QUARANTINE, REJECTED};
        let shipments = [
            // maker → carrier → distributor (into quarantine still delivers).
            shipment(
                "S1",
                100,
                &[
                    ("maker", "carrier", 110, ACCEPTED),
                    ("carrier", "distributor", 200, ACCEPTED_INTO_QUARANTINE),
                ],
            ),
            // Refused at the distributor's door: it delivered nothing.
            shipment("REFUSED", 250, &[("maker", "distributor", 260, REJECTED)]),
            // Two siblings from the distributor.
            shipment("S2", 300, &[("distributor", "pharmacy-a", 310, ACCEPTED)]),
            shipment("S3", 400, &[("distributor", "pharmacy-b", 410, ACCEPTED)]),
            // A later delivery to the distributor is not upstream of S2 or S3.
            shipment("LATER", 500, &[("maker", "distributor", 510, ACCEPTED)]),
            // Pharmacy A sends on (transitive), and one not yet handed off.
            shipment("S4", 600, &[("pharmacy-a", "clinic", 610, ACCEPTED)]),
            shipment("S5", 700, &[]),
        ];
        let all: Vec<&Shipment> = shipments.iter().collect();
        let upstream = |seeds: &[&str]| {
            let mut seen = seeds.iter().map(|s| s.to_string()).collect();
            add_upstream(&all, &mut seen);
            seen.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(upstream(&["S2"]), ["S1", "S2"]);
        assert_eq!(upstream(&["S3"]), ["S1", "S3"]);
        assert_eq!(upstream(&["S1"]), ["S1"]);
        assert_eq!(upstream(&["S4"]), ["S1", "S2", "S4"]);
        // No hand-off yet: sent on by its custodian (pharmacy A) at creation.
        assert_eq!(upstream(&["S5"]), ["S1", "S2", "S5"]);
        assert_eq!(upstream(&["S2", "S3"]), ["S1", "S2", "S3"]);
        assert!(upstream(&[]).is_empty());
    }

    #[test]
    fn a_leg_refused_at_the_door_and_cancelled_is_upstream_of_later_legs() {
        use HandoffOutcome::{ACCEPTED, REJECTED};
        let cancelled = |mut shipment: Shipment, holder: &str, at: u64| {
            shipment.set_status(ShipmentStatus::CANCELLED);
            shipment.set_custodian_org_id(holder.into());
            shipment.set_closed_at_s(at);
            shipment
        };
        let shipments = [
            shipment("S1", 100, &[("maker", "distributor", 110, ACCEPTED)]),
            // Refused by pharmacy A, cancelled by the distributor at 260.
            cancelled(
                shipment("S2", 200, &[("distributor", "pharmacy-a", 250, REJECTED)]),
                "distributor",
                260,
            ),
            shipment("S3", 300, &[("distributor", "pharmacy-b", 310, ACCEPTED)]),
            // Refused but not cancelled yet when S0 began: not upstream of it.
            shipment("S0", 255, &[]),
            // Refused and still open (REFUSED, not cancelled): not upstream.
            shipment("S4", 400, &[("pharmacy-b", "clinic", 410, REJECTED)]),
            shipment("S5", 500, &[("pharmacy-b", "ward", 510, ACCEPTED)]),
        ];
        let mut s0 = shipments[3].clone();
        s0.set_custodian_org_id("distributor".into());
        let mut all: Vec<&Shipment> = shipments.iter().take(3).collect();
        all.extend(&shipments[4..]);
        all.push(&s0);
        let upstream = |seeds: &[&str]| {
            let mut seen = seeds.iter().map(|s| s.to_string()).collect();
            add_upstream(&all, &mut seen);
            seen.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(upstream(&["S3"]), ["S1", "S2", "S3"]);
        assert_eq!(upstream(&["S2"]), ["S1", "S2"]);
        assert_eq!(upstream(&["S0"]), ["S0", "S1"]);
        assert_eq!(upstream(&["S5"]), ["S1", "S2", "S3", "S5"]);

        let mut seen_upstream = shipments[1].clone();
        withhold_refusing_party(&mut seen_upstream);
        let refused = &seen_upstream.get_handoffs()[0];
        assert_eq!(refused.get_to_org_id(), "");
        assert_eq!(refused.get_at_gln(), "");
        assert_eq!(refused.get_reason(), REFUSED_AT_THE_DOCK);
        assert_eq!(refused.get_from_org_id(), "distributor");
    }
}
