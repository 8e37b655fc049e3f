//! The root the tree would have after a set of changes, computed without changing the tree.
//!
//! The walk descends only where changes are, merging them with the existing children and
//! reusing every cached hash of the subtrees they do not touch; nothing is cloned. It follows
//! the uncompressed Sawtooth tree one level at a time, so a change that leaves a compressed
//! edge part-way is handled by standing "inside" the edge ([`Cursor::Inside`]).

use crate::address::{Tokens, TOKENS};
use crate::node_hash::{branch_hash, leaf_hash, NodeHash};
use crate::tree::{chain_hash, Branch, Edge, Node};

/// One pending change: the address tokens and the new value, `None` for a delete.
pub(crate) type Pending<'v> = (Tokens, Option<&'v [u8]>);

/// A position in the existing tree, at some depth of the uncompressed tree.
#[derive(Clone, Copy)]
enum Cursor<'t> {
    /// Nothing exists here yet.
    Empty,
    Node(&'t Node),
    Root(&'t Branch),
    /// At the node reached after `path[..offset]` of this edge (`1 <= offset < path.len()`).
    Inside(&'t Edge, usize),
}

impl<'t> Cursor<'t> {
    /// The cursor one level down through `edge`, from the branch the edge hangs off.
    fn enter(edge: &'t Edge, offset: usize) -> Cursor<'t> {
        if offset == edge.path.len() {
            Cursor::Node(&edge.node)
        } else {
            Cursor::Inside(edge, offset)
        }
    }

    /// The existing hash here (`None` for an empty position). The tree is clean outside
    /// `apply`, so every cached hash read here is valid.
    fn existing_hash(self) -> Option<NodeHash> {
        match self {
            Cursor::Empty => None,
            Cursor::Root(branch) => Some(branch.hash),
            Cursor::Node(Node::Branch(branch)) => Some(branch.hash),
            Cursor::Node(Node::Leaf(leaf)) => Some(leaf.hash),
            Cursor::Inside(edge, offset) => {
                let bottom = match &*edge.node {
                    Node::Branch(branch) => branch.hash,
                    Node::Leaf(leaf) => leaf.hash,
                };
                Some(chain_hash(bottom, &edge.path[offset..]))
            }
        }
    }

    /// Children one level down: `(token, cursor, cached hash if the tree has one)`.
    fn children(self) -> Vec<(u8, Cursor<'t>, Option<NodeHash>)> {
        let edges = match self {
            Cursor::Empty | Cursor::Node(Node::Leaf(_)) => return Vec::new(),
            Cursor::Inside(edge, offset) => {
                return vec![(edge.path[offset], Cursor::enter(edge, offset + 1), None)];
            }
            Cursor::Root(branch) | Cursor::Node(Node::Branch(branch)) => &branch.edges,
        };
        edges
            .iter()
            .map(|edge| (edge.token, Cursor::enter(edge, 1), Some(edge.top)))
            .collect()
    }
}

/// Root hash of `root` with `changes` applied. `changes` must be sorted by address with at
/// most one entry per address (the last change to each address).
pub(crate) fn root_after(root: &Branch, changes: &[Pending<'_>]) -> NodeHash {
    let mut scratch = Vec::new();
    // The root always exists, even with no children, so this is never `None`.
    virtual_hash(Cursor::Root(root), 0, changes, &mut scratch).unwrap_or(root.hash)
}

fn virtual_hash(
    cursor: Cursor<'_>,
    depth: usize,
    changes: &[Pending<'_>],
    scratch: &mut Vec<u8>,
) -> Option<NodeHash> {
    if changes.is_empty() {
        return cursor.existing_hash();
    }
    if depth == TOKENS {
        // One address reaches a leaf position; `changes` holds only its last change.
        return changes.last().and_then(|(_, value)| value.map(leaf_hash));
    }
    let existing = cursor.children();
    let mut merged: Vec<(u8, NodeHash)> = Vec::with_capacity(existing.len() + 1);
    let mut existing = existing.into_iter().peekable();
    let mut rest = changes;
    loop {
        let next_change = rest.first().map(|(tokens, _)| tokens[depth]);
        let next_existing = existing.peek().map(|(token, _, _)| *token);
        let token = match (next_change, next_existing) {
            (None, None) => break,
            (Some(c), Some(e)) => c.min(e),
            (Some(c), None) => c,
            (None, Some(e)) => e,
        };
        let group_len = rest
            .iter()
            .take_while(|(tokens, _)| tokens[depth] == token)
            .count();
        let (group, after) = rest.split_at(group_len);
        rest = after;
        let (child, cached) = match existing.next_if(|(t, _, _)| *t == token) {
            Some((_, child, cached)) => (child, cached),
            None => (Cursor::Empty, None),
        };
        let hash = match (group.is_empty(), cached) {
            (true, Some(cached)) => Some(cached),
            _ => virtual_hash(child, depth + 1, group, scratch),
        };
        if let Some(hash) = hash {
            merged.push((token, hash));
        }
    }
    if merged.is_empty() && depth > 0 {
        // Sawtooth prunes a node left with no children; only the root stays.
        return None;
    }
    Some(branch_hash(
        merged.iter().map(|(token, hash)| (*token, hash)),
        scratch,
    ))
}
