//! Listing leaves in address order, optionally under an address prefix.
//!
//! Children are kept in ascending token order and tokens sort like their hex text, so a
//! depth-first walk yields addresses sorted as strings. Subtrees whose path disagrees with the
//! prefix are skipped without being visited.

use crate::tree::{Branch, Edge, Node};

/// Iterator over `(address, unwrapped value)` in ascending address order.
pub struct Leaves<'a> {
    /// Prefix as hex nibbles.
    prefix: Vec<u8>,
    /// Per open branch: its remaining children and the depth (in tokens) of those children's
    /// first path token.
    stack: Vec<(std::slice::Iter<'a, Edge>, usize)>,
}

impl<'a> Leaves<'a> {
    pub(crate) fn new(root: &'a Branch, prefix: Option<Vec<u8>>) -> Leaves<'a> {
        match prefix {
            Some(prefix) => Leaves {
                prefix,
                stack: vec![(root.edges.iter(), 0)],
            },
            // Not a possible prefix of any address: nothing matches.
            None => Leaves {
                prefix: Vec::new(),
                stack: Vec::new(),
            },
        }
    }

    /// Whether the tokens of `path`, starting at token depth `depth`, agree with the prefix.
    fn agrees(&self, path: &[u8], depth: usize) -> bool {
        path.iter().enumerate().all(|(offset, &token)| {
            let nibble = 2 * (depth + offset);
            let high = !matches!(self.prefix.get(nibble), Some(&n) if n != token >> 4);
            let low = !matches!(self.prefix.get(nibble + 1), Some(&n) if n != token & 0x0f);
            high && low
        })
    }
}

impl<'a> Iterator for Leaves<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (edges, depth) = self.stack.last_mut()?;
            let depth = *depth;
            let Some(edge) = edges.next() else {
                self.stack.pop();
                continue;
            };
            if !self.agrees(&edge.path, depth) {
                continue;
            }
            match &*edge.node {
                Node::Leaf(leaf) => return Some((&leaf.address, &leaf.value)),
                Node::Branch(branch) => self
                    .stack
                    .push((branch.edges.iter(), depth + edge.path.len())),
            }
        }
    }
}
