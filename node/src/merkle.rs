//! The node's view of the Merkle-radix state: one seam over `coldchain-state`
//! so the rest of the node deals in (address, Option<value>) changes and hex
//! roots only. Values here are unwrapped, exactly as TPs wrote them; the
//! state crate applies Sawtooth's CBOR wrapping inside the hash, so roots
//! equal a Sawtooth 1.2 validator's for the same leaves.
use coldchain_state::{MerkleRadix, StateChange};

use crate::store::LeafChange;

/// Why the state tree refused an update.
#[derive(Debug, thiserror::Error)]
#[error("state tree: {0}")]
pub struct TreeError(#[from] pub coldchain_state::StateError);

/// The current state, in memory.
pub struct StateTree {
    tree: MerkleRadix,
}

impl StateTree {
    /// Builds the tree holding exactly these leaves.
    pub fn from_leaves(leaves: Vec<(String, Vec<u8>)>) -> Result<StateTree, TreeError> {
        Ok(StateTree {
            tree: MerkleRadix::from_leaves(leaves)?,
        })
    }

    /// The state root as 64 hex characters.
    pub fn root(&self) -> String {
        self.tree.root()
    }

    /// The value at a full address.
    pub fn get(&self, address: &str) -> Option<Vec<u8>> {
        self.tree.get(address).map(<[u8]>::to_vec)
    }

    /// Applies the changes (all or nothing) and returns the new root.
    pub fn apply(&mut self, changes: &[LeafChange]) -> Result<String, TreeError> {
        let changes: Vec<StateChange> = changes
            .iter()
            .map(|(address, value)| match value {
                Some(value) => StateChange::Set {
                    address: address.clone(),
                    value: value.clone(),
                },
                None => StateChange::Delete {
                    address: address.clone(),
                },
            })
            .collect();
        Ok(self.tree.apply(&changes)?)
    }
}
