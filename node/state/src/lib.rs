//! Sawtooth-compatible Merkle-radix state held in memory: the same leaves give exactly the
//! state root a Hyperledger Sawtooth 1.2 validator computes.
//!
//! # Layout
//! - [`MerkleRadix`] (this file): the public API — read a value, apply a block's changes,
//!   compute a root without applying, list leaves, rebuild from stored leaves.
//! - `address`: validating 70-character addresses and splitting them into tree tokens.
//! - `node_hash`: the CBOR bytes of a Sawtooth node and their hash, written by hand (hot path),
//!   including the CBOR wrapping a Sawtooth 1.2 validator applies to every stored value.
//! - `tree`: the path-compressed in-memory tree and its incremental re-hashing.
//! - `overlay`: the root after some changes, without touching the tree.
//! - `leaves`: ordered listing under a prefix.
//!
//! # Boundaries
//! This crate does no I/O and keeps no history: it holds the current state only. The node
//! persists leaves (SQLite) and calls [`MerkleRadix::from_leaves`] at start-up; older roots,
//! blocks and receipts are not its business. Values go in and come out unwrapped; the CBOR
//! wrapping exists only inside the node hashes.
//!
//! # Semantics
//! Changes in one `apply` take effect in order, so the last change to an address wins (a set
//! followed by a delete deletes). Deleting an address that holds no value changes nothing.
//! An empty value is a value (it is stored, and hashes differently from no value).

mod address;
mod leaves;
mod node_hash;
mod overlay;
mod tree;

use std::collections::BTreeMap;

pub use address::ADDRESS_LENGTH;
pub use leaves::Leaves;

use tree::{Branch, Node};

/// Number of changes from which `apply` hashes on two threads; below it the thread start
/// costs more than it saves.
const PARALLEL_HASHING_FROM: usize = 256;

/// One change to state, as produced by executing transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Store `value` (unwrapped) at `address`.
    Set { address: String, value: Vec<u8> },
    /// Remove whatever `address` holds.
    Delete { address: String },
}

impl StateChange {
    /// The address this change touches.
    pub fn address(&self) -> &str {
        match self {
            StateChange::Set { address, .. } | StateChange::Delete { address } => address,
        }
    }
}

/// What can go wrong with state input.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The address is not 70 lowercase hex characters.
    #[error(
        "state address {0:?} is not {ADDRESS_LENGTH} lowercase hex characters \
         (a Sawtooth address is a 6-character namespace followed by 64 hex characters)"
    )]
    BadAddress(String),
    /// The same address appears twice in the leaves given to `from_leaves`.
    #[error(
        "state address {0} appears more than once in the stored leaves; \
         the leaf store is inconsistent and must be repaired before the node can start"
    )]
    DuplicateAddress(String),
}

/// The state tree. Cloning copies the whole tree (memory proportional to the leaves).
#[derive(Clone, Debug)]
pub struct MerkleRadix {
    root: Branch,
    len: usize,
    parallel_hashing: bool,
}

impl Default for MerkleRadix {
    fn default() -> Self {
        MerkleRadix::new()
    }
}

impl MerkleRadix {
    /// An empty tree; its root is [`MerkleRadix::empty_root`].
    pub fn new() -> MerkleRadix {
        MerkleRadix {
            root: Branch::empty_root(),
            len: 0,
            parallel_hashing: true,
        }
    }

    /// The root of a tree with no leaves, as 64 lowercase hex characters.
    pub fn empty_root() -> String {
        node_hash::to_hex(&node_hash::empty_node_hash())
    }

    /// The current state root, as 64 lowercase hex characters.
    pub fn root(&self) -> String {
        node_hash::to_hex(&self.root.hash)
    }

    /// The (unwrapped) value at `address`; `None` when there is none or the address is
    /// malformed.
    pub fn get(&self, address: &str) -> Option<&[u8]> {
        let key = address::parse(address).ok()?;
        self.root.get(0, &key).map(|leaf| &*leaf.value)
    }

    /// Applies `changes` in order and returns the new root. Every address is checked before
    /// anything changes, so on error the tree is untouched. Each node the changes dirty is
    /// hashed once, after all of them are in.
    pub fn apply(&mut self, changes: &[StateChange]) -> Result<String, StateError> {
        let keys = changes
            .iter()
            .map(|change| address::parse(change.address()))
            .collect::<Result<Vec<_>, _>>()?;
        for (change, key) in changes.iter().zip(&keys) {
            match change {
                StateChange::Set { address, value } => {
                    if self.root.insert(0, key, address, value) {
                        self.len += 1;
                    }
                }
                StateChange::Delete { .. } => {
                    if self.root.remove(0, key) {
                        self.len -= 1;
                    }
                }
            }
        }
        self.rehash(self.parallel_hashing && changes.len() >= PARALLEL_HASHING_FROM);
        Ok(self.root())
    }

    /// The root `apply(changes)` would return, leaving the tree as it is. Costs about what
    /// `apply` costs (the touched paths are hashed), with no copy of the tree.
    pub fn root_after(&self, changes: &[StateChange]) -> Result<String, StateError> {
        let mut last: BTreeMap<address::Tokens, Option<&[u8]>> = BTreeMap::new();
        for change in changes {
            let key = address::parse(change.address())?;
            let value = match change {
                StateChange::Set { value, .. } => Some(value.as_slice()),
                StateChange::Delete { .. } => None,
            };
            last.insert(key, value);
        }
        let pending: Vec<overlay::Pending<'_>> = last.into_iter().collect();
        Ok(node_hash::to_hex(&overlay::root_after(
            &self.root, &pending,
        )))
    }

    /// Leaves whose address starts with `prefix` (0 to 70 lowercase hex characters), in
    /// ascending address order, with unwrapped values. A prefix that no address can start
    /// with (uppercase, non-hex, too long) yields nothing.
    pub fn leaves_with_prefix(&self, prefix: &str) -> Leaves<'_> {
        Leaves::new(&self.root, address::parse_prefix(prefix))
    }

    /// Whether `apply` may hash on a second thread when a call carries many changes (on by
    /// default). Turn it off when the other core is better spent elsewhere, e.g. verifying
    /// signatures of the next block; the roots are the same either way.
    pub fn set_parallel_hashing(&mut self, enabled: bool) {
        self.parallel_hashing = enabled;
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Builds the tree from stored `(address, unwrapped value)` leaves, in any order, hashing
    /// every node once at the end.
    pub fn from_leaves(
        leaves: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<MerkleRadix, StateError> {
        let mut tree = MerkleRadix::new();
        for (address, value) in leaves {
            let key = address::parse(&address)?;
            if !tree.root.insert(0, &key, &address, &value) {
                return Err(StateError::DuplicateAddress(address));
            }
            tree.len += 1;
        }
        tree.rehash(tree.len >= PARALLEL_HASHING_FROM);
        Ok(tree)
    }

    fn rehash(&mut self, parallel: bool) {
        if self.root.dirty {
            let mut scratch = Vec::new();
            self.root.rehash(&mut scratch, parallel);
        }
    }

    /// Number of nodes stored (compressed), for memory estimates in benchmarks.
    #[doc(hidden)]
    pub fn stored_node_count(&self) -> usize {
        fn count(branch: &Branch) -> usize {
            1 + branch
                .edges
                .iter()
                .map(|edge| match &*edge.node {
                    Node::Leaf(_) => 1,
                    Node::Branch(child) => count(child),
                })
                .sum::<usize>()
        }
        count(&self.root)
    }
}

#[cfg(test)]
mod tests;
