//! Hyperledger Transact's key-value `MerkleState` as the reference implementation, fed values
//! CBOR-wrapped the way a Sawtooth 1.2 validator stores them (Python `cbor.dumps(value)`).
//! Shared by the differential tests and the benchmark; test code, so it panics on failure.
#![allow(dead_code)]

use std::path::Path;

use coldchain_state::StateChange;
use transact::database::btree::BTreeDatabase;
use transact::database::lmdb::{LmdbContext, LmdbDatabase};
use transact::database::Database;
use transact::state::merkle::{MerkleRadixLeafReader, MerkleRadixTree, MerkleState, INDEXES};
use transact::state::{StateChange as TransactChange, Write};

/// The value as a CBOR byte string (major type 2, shortest length head).
pub fn cbor_wrap(value: &[u8]) -> Vec<u8> {
    let len = value.len() as u64;
    let mut out = Vec::with_capacity(value.len() + 9);
    match len {
        0..=23 => out.push(0x40 | len as u8),
        24..=0xff => out.extend_from_slice(&[0x58, len as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x5a);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            out.push(0x5b);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// Strips the CBOR byte-string head `cbor_wrap` adds.
pub fn cbor_unwrap(wrapped: &[u8]) -> Vec<u8> {
    let head = match wrapped[0] & 0x1f {
        0..=23 => 1,
        24 => 2,
        25 => 3,
        26 => 5,
        _ => 9,
    };
    wrapped[head..].to_vec()
}

pub struct TransactReference {
    state: MerkleState,
    root: String,
}

impl TransactReference {
    pub fn in_memory() -> TransactReference {
        TransactReference::over(Box::new(BTreeDatabase::new(&INDEXES)))
    }

    /// Over an LMDB file, as Sawtooth and Transact deploy it.
    pub fn over_lmdb(file: &Path) -> TransactReference {
        let context = LmdbContext::new(file, INDEXES.len(), Some(8 << 30)).expect("lmdb context");
        let db = LmdbDatabase::new(context, &INDEXES).expect("lmdb database");
        TransactReference::over(Box::new(db))
    }

    fn over(db: Box<dyn Database>) -> TransactReference {
        let root = MerkleRadixTree::new(db.clone(), None)
            .expect("empty transact tree")
            .get_merkle_root();
        TransactReference {
            state: MerkleState::new(db),
            root,
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Commits the changes (values CBOR-wrapped) and returns the new root.
    pub fn commit(&mut self, changes: &[StateChange]) -> String {
        self.root = self
            .state
            .commit(&self.root, &to_transact(changes, cbor_wrap))
            .expect("transact commit");
        self.root.clone()
    }

    /// Commits the values as they are, without the CBOR wrapping a Sawtooth 1.2 validator
    /// adds: what a naive port would do.
    pub fn commit_unwrapped(&mut self, changes: &[StateChange]) -> String {
        self.root = self
            .state
            .commit(&self.root, &to_transact(changes, |value| value.to_vec()))
            .expect("transact commit");
        self.root.clone()
    }

    /// The root Transact would compute, without committing.
    pub fn compute_root(&self, changes: &[StateChange]) -> String {
        self.state
            .compute_state_id(&self.root, &to_transact(changes, cbor_wrap))
            .expect("transact compute_state_id")
    }

    /// Leaves under `prefix`, unwrapped, in Transact's order.
    pub fn leaves(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let subtree = if prefix.is_empty() {
            None
        } else {
            Some(prefix)
        };
        match self.state.leaves(&self.root, subtree) {
            Ok(iter) => iter
                .map(|leaf| {
                    let (address, wrapped) = leaf.expect("transact leaf");
                    (address, cbor_unwrap(&wrapped))
                })
                .collect(),
            // Transact reports a prefix with no subtree as an error; it simply has no leaves.
            Err(_) => Vec::new(),
        }
    }
}

fn to_transact(changes: &[StateChange], encode: impl Fn(&[u8]) -> Vec<u8>) -> Vec<TransactChange> {
    changes
        .iter()
        .map(|change| match change {
            StateChange::Set { address, value } => TransactChange::Set {
                key: address.clone(),
                value: encode(value),
            },
            StateChange::Delete { address } => TransactChange::Delete {
                key: address.clone(),
            },
        })
        .collect()
}
