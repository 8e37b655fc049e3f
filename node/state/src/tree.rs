//! The in-memory Merkle-radix tree: its shape, its updates and its incremental re-hashing.
//!
//! Sawtooth's tree has one level per address token (35 below the root) and no path
//! compression, so with N leaves it has roughly 35·N nodes. Holding those in memory would cost
//! gigabytes, so this tree stores the same nodes path-compressed: an [`Edge`] stands for a run
//! of single-child nodes and caches the hash of the topmost one. The hashes are exactly those
//! of the uncompressed tree (see `node_hash`); only the storage differs.
//!
//! Re-hashing is lazy: updates mark the path they touch (`Branch::dirty`, `Edge::stale`) and
//! one pass afterwards hashes every dirty node once, however many changes touched it. Clean
//! subtrees are never re-encoded: their parent reads the cached hash from the edge.
//!
//! This module does no I/O and knows nothing of blocks or transactions.

use crate::address::Tokens;
use crate::node_hash::{branch_hash, empty_node_hash, leaf_hash, single_child_hash, NodeHash};

/// A node that branches (two or more children) or the root (any number).
#[derive(Clone, Debug)]
pub(crate) struct Branch {
    /// Children in ascending order of their first token.
    pub(crate) edges: Vec<Edge>,
    /// This node's hash; valid only while `dirty` is false.
    pub(crate) hash: NodeHash,
    pub(crate) dirty: bool,
}

/// A node at depth 35: one state entry.
#[derive(Clone, Debug)]
pub(crate) struct Leaf {
    pub(crate) address: Box<str>,
    /// The unwrapped value; the CBOR wrapping exists only inside the hash.
    pub(crate) value: Box<[u8]>,
    pub(crate) hash: NodeHash,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Branch(Branch),
    Leaf(Leaf),
}

/// The path from a branch down to its child node: `path[0]` is the token under which the
/// branch lists the child, `path[1..]` are single-child nodes in between.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    /// `path[0]`, kept inline: searching and encoding a wide branch read it for every child,
    /// and following the `path` pointer for each would be a cache miss per child.
    pub(crate) token: u8,
    pub(crate) path: Box<[u8]>,
    pub(crate) node: Box<Node>,
    /// Hash of the node `path[0]` leads to (the topmost one in this run); valid unless `stale`.
    pub(crate) top: NodeHash,
    pub(crate) stale: bool,
}

impl Leaf {
    pub(crate) fn new(address: &str, value: &[u8]) -> Leaf {
        Leaf {
            address: address.into(),
            value: value.into(),
            hash: leaf_hash(value),
        }
    }
}

impl Edge {
    /// `path` is never empty: an edge leads at least one level down.
    fn new(path: &[u8], node: Node) -> Edge {
        Edge {
            token: path[0],
            path: path.into(),
            node: Box::new(node),
            top: [0; 32],
            stale: true,
        }
    }

    /// Recomputes `top` from the child's hash through the run of single-child nodes.
    fn refresh(&mut self, scratch: &mut Vec<u8>) {
        if !self.stale {
            return;
        }
        let mut hash = match &mut *self.node {
            Node::Leaf(leaf) => leaf.hash,
            Node::Branch(branch) => {
                if branch.dirty {
                    branch.rehash(scratch, false);
                }
                branch.hash
            }
        };
        hash = chain_hash(hash, &self.path[1..]);
        self.top = hash;
        self.stale = false;
    }
}

/// Hash of the node `tokens[0]` leads to, when a run of single-child nodes takes the tokens
/// in order down to a node whose hash is `bottom`.
pub(crate) fn chain_hash(bottom: NodeHash, tokens: &[u8]) -> NodeHash {
    tokens
        .iter()
        .rev()
        .fold(bottom, |hash, &token| single_child_hash(token, &hash))
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Branch {
    /// The root of an empty tree.
    pub(crate) fn empty_root() -> Branch {
        Branch {
            edges: Vec::new(),
            hash: empty_node_hash(),
            dirty: false,
        }
    }

    fn find(&self, token: u8) -> Result<usize, usize> {
        self.edges.binary_search_by_key(&token, |edge| edge.token)
    }

    /// The leaf at `key` below this branch, which sits at `depth`.
    pub(crate) fn get(&self, depth: usize, key: &Tokens) -> Option<&Leaf> {
        let mut branch = self;
        let mut depth = depth;
        loop {
            let edge = &branch.edges[branch.find(key[depth]).ok()?];
            if !key[depth..].starts_with(&edge.path) {
                return None;
            }
            depth += edge.path.len();
            match &*edge.node {
                Node::Leaf(leaf) => return Some(leaf),
                Node::Branch(next) => branch = next,
            }
        }
    }

    /// Sets the leaf at `key`; returns true when the address was not in the tree before.
    pub(crate) fn insert(
        &mut self,
        depth: usize,
        key: &Tokens,
        address: &str,
        value: &[u8],
    ) -> bool {
        self.dirty = true;
        let rest = &key[depth..];
        let position = match self.find(rest[0]) {
            Ok(position) => position,
            Err(position) => {
                let leaf = Node::Leaf(Leaf::new(address, value));
                self.edges.insert(position, Edge::new(rest, leaf));
                return true;
            }
        };
        let edge = &mut self.edges[position];
        edge.stale = true;
        let common = common_prefix_len(&edge.path, rest);
        if common == edge.path.len() {
            return match &mut *edge.node {
                // The whole remaining address matched: same address, new value.
                Node::Leaf(leaf) => {
                    leaf.value = value.into();
                    leaf.hash = leaf_hash(value);
                    false
                }
                Node::Branch(child) => child.insert(depth + common, key, address, value),
            };
        }
        // The new address leaves this edge part-way: a new branch goes where they part.
        let old_node = std::mem::replace(&mut *edge.node, Node::Branch(Branch::empty_root()));
        let lower = Edge::new(&edge.path[common..], old_node);
        let new_leaf = Edge::new(&rest[common..], Node::Leaf(Leaf::new(address, value)));
        let edges = if lower.token < new_leaf.token {
            vec![lower, new_leaf]
        } else {
            vec![new_leaf, lower]
        };
        *edge.node = Node::Branch(Branch {
            edges,
            hash: [0; 32],
            dirty: true,
        });
        edge.path = rest[..common].into();
        true
    }

    /// Removes the leaf at `key`; returns true when there was one. Branches left with a
    /// single child merge into the edge above them, so no empty or one-child branch remains
    /// (the uncompressed tree prunes empty nodes the same way Sawtooth does).
    pub(crate) fn remove(&mut self, depth: usize, key: &Tokens) -> bool {
        let rest = &key[depth..];
        let Ok(position) = self.find(rest[0]) else {
            return false;
        };
        let edge = &mut self.edges[position];
        if !rest.starts_with(&edge.path) {
            return false;
        }
        let child_depth = depth + edge.path.len();
        match &mut *edge.node {
            Node::Leaf(_) => {
                self.edges.remove(position);
            }
            Node::Branch(child) => {
                if !child.remove(child_depth, key) {
                    return false;
                }
                if child.edges.len() == 1 {
                    if let Some(only) = child.edges.pop() {
                        let mut path = Vec::with_capacity(edge.path.len() + only.path.len());
                        path.extend_from_slice(&edge.path);
                        path.extend_from_slice(&only.path);
                        edge.path = path.into();
                        edge.node = only.node;
                    }
                }
                edge.stale = true;
            }
        }
        self.dirty = true;
        true
    }

    /// Hashes every dirty node below and including this one, each exactly once. With
    /// `parallel`, the dirty subtrees below [`PARALLEL_FRONTIER`] are first shared out between
    /// this thread and one more; the levels above are then finished here.
    pub(crate) fn rehash(&mut self, scratch: &mut Vec<u8>, parallel: bool) {
        if parallel {
            let mut frontier = Vec::new();
            collect_frontier(&mut self.edges, 0, &mut frontier);
            refresh_on_two_threads(&mut frontier, scratch);
        }
        for edge in &mut self.edges {
            edge.refresh(scratch);
        }
        self.hash = branch_hash(
            self.edges.iter().map(|edge| (edge.token, &edge.top)),
            scratch,
        );
        self.dirty = false;
    }
}

/// Depth (in tokens) from which dirty subtrees are handed to the two hashing threads: just
/// below the 3-token family namespaces, where random addresses fan out evenly, so halving
/// the list of subtrees roughly halves the work.
const PARALLEL_FRONTIER: usize = 4;

/// Collects the stale edges that reach [`PARALLEL_FRONTIER`] (or a leaf before it) below
/// `edges`, which hang off a branch at `depth`.
fn collect_frontier<'a>(edges: &'a mut [Edge], depth: usize, out: &mut Vec<&'a mut Edge>) {
    for edge in edges.iter_mut().filter(|edge| edge.stale) {
        let child_depth = depth + edge.path.len();
        let descend = child_depth < PARALLEL_FRONTIER
            && matches!(&*edge.node, Node::Branch(branch) if branch.dirty);
        if !descend {
            out.push(edge);
        } else if let Node::Branch(branch) = &mut *edge.node {
            collect_frontier(&mut branch.edges, child_depth, out);
        }
    }
}

/// Refreshes the given edges, half on a scoped worker thread and half on this one. If the OS
/// refuses the thread, its half stays stale and the caller's sequential pass hashes it.
fn refresh_on_two_threads(edges: &mut [&mut Edge], scratch: &mut Vec<u8>) {
    let (first, second) = edges.split_at_mut(edges.len() / 2);
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("state-rehash".into())
            .spawn_scoped(scope, move || {
                let mut scratch = Vec::new();
                for edge in first.iter_mut() {
                    edge.refresh(&mut scratch);
                }
            });
        for edge in second.iter_mut() {
            edge.refresh(scratch);
        }
        if let Ok(handle) = worker {
            // A worker that died left its edges stale; the sequential pass redoes them.
            let _ = handle.join();
        }
    });
}
