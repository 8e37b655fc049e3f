//! Batch validation before a batch is queued: structure, secp256k1 signatures,
//! batcher keys, payload hashes, duplicate ids, dependencies and known
//! families. A rejected batch never reaches the queue; the client gets the
//! reason at once (Sawtooth answers these with "Submitted Batches Invalid").
//!
//! Signature checks, the expensive part, run on two threads for large lists.
//! This module never touches state or the chain directly: the caller answers
//! "is this id committed or pending?" through [`KnownIds`].
use std::collections::HashSet;

use protobuf::Message;
use sawtooth_sdk::messages::batch::{Batch, BatchHeader, BatchList};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sha2::{Digest, Sha512};

use crate::handlers::HandlerRegistry;

/// A transaction that passed validation, with its decoded header.
#[derive(Clone, Debug)]
pub struct ValidTransaction {
    pub id: String,
    pub header: TransactionHeader,
}

/// A batch that passed validation.
#[derive(Clone, Debug)]
pub struct ValidBatch {
    pub id: String,
    pub batch: Batch,
    pub transactions: Vec<ValidTransaction>,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("The protobuf BatchList you submitted was malformed and could not be read: {0}")]
    Undecodable(String),
    #[error("The protobuf BatchList you submitted was empty and contained no Batches. You must submit at least one Batch.")]
    Empty,
    #[error("batch {batch_id}: {reason}")]
    Invalid { batch_id: String, reason: String },
}

/// What the chain and the queue already hold.
pub trait KnownIds {
    /// True when a transaction with this id is committed.
    fn transaction_committed(&self, id: &str) -> bool;
    /// True when a transaction with this id is queued or executing.
    fn transaction_pending(&self, id: &str) -> bool;
}

/// Decodes a `POST /batches` body.
pub fn decode_batch_list(body: &[u8]) -> Result<Vec<Batch>, Rejection> {
    let list =
        BatchList::parse_from_bytes(body).map_err(|e| Rejection::Undecodable(e.to_string()))?;
    if list.get_batches().is_empty() {
        return Err(Rejection::Empty);
    }
    Ok(list.batches.into_vec())
}

struct SignatureCheck {
    batch_index: usize,
    what: String,
    public_key: String,
    message: Vec<u8>,
    signature: String,
}

fn invalid(batch: &Batch, reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        batch_id: short(batch.get_header_signature()),
        reason: reason.into(),
    }
}

fn short(id: &str) -> String {
    if id.is_empty() {
        "(no header_signature)".to_string()
    } else {
        id.to_string()
    }
}

fn is_signature_hex(s: &str) -> bool {
    s.len() == 128 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Validates every batch of a submission; all or nothing.
pub fn validate_batches(
    batches: Vec<Batch>,
    registry: &HandlerRegistry,
    known: &dyn KnownIds,
) -> Result<Vec<ValidBatch>, Rejection> {
    let mut checks = Vec::new();
    let mut valid = Vec::with_capacity(batches.len());
    let mut seen_txns: HashSet<String> = HashSet::new();
    let mut seen_batches: HashSet<String> = HashSet::new();
    for (batch_index, batch) in batches.into_iter().enumerate() {
        if !is_signature_hex(batch.get_header_signature()) {
            return Err(invalid(
                &batch,
                "header_signature is not 128 hex characters",
            ));
        }
        if !seen_batches.insert(batch.get_header_signature().to_string()) {
            return Err(invalid(
                &batch,
                "the same batch appears twice in the BatchList",
            ));
        }
        let header = BatchHeader::parse_from_bytes(batch.get_header()).map_err(|e| {
            invalid(
                &batch,
                format!("batch header is not a valid BatchHeader: {e}"),
            )
        })?;
        if batch.get_transactions().is_empty() {
            return Err(invalid(&batch, "batch contains no transactions"));
        }
        let txn_ids: Vec<&str> = batch
            .get_transactions()
            .iter()
            .map(|t| t.get_header_signature())
            .collect();
        if header.get_transaction_ids() != txn_ids.as_slice() {
            return Err(invalid(
                &batch,
                "batch header transaction_ids do not match the batch's transactions (same ids, same order required)",
            ));
        }
        checks.push(SignatureCheck {
            batch_index,
            what: "batch header signature".into(),
            public_key: header.get_signer_public_key().to_string(),
            message: batch.get_header().to_vec(),
            signature: batch.get_header_signature().to_string(),
        });
        let mut transactions = Vec::with_capacity(txn_ids.len());
        for txn in batch.get_transactions() {
            let id = txn.get_header_signature();
            if !is_signature_hex(id) {
                return Err(invalid(
                    &batch,
                    format!("transaction header_signature {id:?} is not 128 hex characters"),
                ));
            }
            let txn_header =
                TransactionHeader::parse_from_bytes(txn.get_header()).map_err(|e| {
                    invalid(
                        &batch,
                        format!("transaction {id}: header is not a valid TransactionHeader: {e}"),
                    )
                })?;
            if txn_header.get_batcher_public_key() != header.get_signer_public_key() {
                return Err(invalid(
                    &batch,
                    format!("transaction {id}: batcher_public_key does not match the batch signer"),
                ));
            }
            let digest = hex::encode(Sha512::digest(txn.get_payload()));
            if !digest.eq_ignore_ascii_case(txn_header.get_payload_sha512()) {
                return Err(invalid(
                    &batch,
                    format!("transaction {id}: payload_sha512 does not match the payload"),
                ));
            }
            let (family, version) = (
                txn_header.get_family_name(),
                txn_header.get_family_version(),
            );
            if registry.route(family, version).is_none() {
                return Err(invalid(
                    &batch,
                    format!("transaction {id}: no transaction processor for family {family:?} version {version:?}"),
                ));
            }
            if !seen_txns.insert(id.to_string())
                || known.transaction_pending(id)
                || known.transaction_committed(id)
            {
                return Err(invalid(
                    &batch,
                    format!("transaction {id}: duplicate transaction id"),
                ));
            }
            for dep in txn_header.get_dependencies() {
                if !(seen_txns.contains(dep.as_str())
                    || known.transaction_pending(dep)
                    || known.transaction_committed(dep))
                {
                    return Err(invalid(
                        &batch,
                        format!(
                            "transaction {id}: dependency {dep} is neither committed nor submitted"
                        ),
                    ));
                }
            }
            checks.push(SignatureCheck {
                batch_index,
                what: format!("transaction {id} header signature"),
                public_key: txn_header.get_signer_public_key().to_string(),
                message: txn.get_header().to_vec(),
                signature: id.to_string(),
            });
            transactions.push(ValidTransaction {
                id: id.to_string(),
                header: txn_header,
            });
        }
        valid.push(ValidBatch {
            id: batch.get_header_signature().to_string(),
            batch,
            transactions,
        });
    }
    if let Some((batch_index, reason)) = first_bad_signature(&checks) {
        return Err(invalid(&valid[batch_index].batch, reason));
    }
    Ok(valid)
}

fn check_one(check: &SignatureCheck) -> Option<(usize, String)> {
    match coldchain_processors::signing::verify(&check.public_key, &check.message, &check.signature)
    {
        Ok(true) => None,
        Ok(false) => Some((check.batch_index, format!("{} is not valid", check.what))),
        Err(e) => Some((check.batch_index, format!("{}: {e}", check.what))),
    }
}

/// Verifies all signatures, splitting the work over two threads when there
/// is enough of it; returns the first failure in submission order.
fn first_bad_signature(checks: &[SignatureCheck]) -> Option<(usize, String)> {
    const PARALLEL_FROM: usize = 32;
    if checks.len() < PARALLEL_FROM {
        return checks.iter().find_map(check_one);
    }
    let (first, second) = checks.split_at(checks.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| second.iter().find_map(check_one));
        let mine = first.iter().find_map(check_one);
        let theirs = other.join().unwrap_or_else(|_| {
            Some((
                second[0].batch_index,
                "signature check failed unexpectedly".to_string(),
            ))
        });
        mine.or(theirs)
    })
}
