//! The bytes a Sawtooth validator hashes for each Merkle-radix node, and the hash itself.
//!
//! A node is the CBOR map `{"c": {token: child_hash_hex, ..}, "v": value-or-null}` with its keys
//! in sorted order; its hash is the first 32 bytes of SHA-512 over that encoding. This module
//! writes those few CBOR shapes by hand instead of building a generic CBOR value: it is the hot
//! path of every commit. It knows nothing about the tree's shape or about addresses.
//!
//! Two CBOR encoders meet in a Sawtooth 1.2 leaf, and their length heads differ:
//! - the inner wrap of the value comes from Python's `cbor.dumps` (minimal heads);
//! - the node itself comes from the Rust `cbor-codec` 0.7 crate used by the validator (and by
//!   Hyperledger Transact). Its head encoder has a range bug: a length in `0x1_0000..=0xF_FFFF`
//!   (64 KiB up to 1 MiB - 1) gets an 8-byte head instead of a 4-byte one. The validator's root
//!   depends on that, so [`push_codec_head`] reproduces it on purpose.

use sha2::{Digest, Sha512};

/// A node hash: the first 32 bytes of SHA-512 over the node's CBOR encoding.
pub(crate) type NodeHash = [u8; 32];

const MAJOR_BYTES: u8 = 2 << 5;
const MAJOR_TEXT: u8 = 3 << 5;
const MAJOR_MAP: u8 = 5 << 5;
const NULL: u8 = 0xf6;

/// `{"c": ` as the start of a two-entry map; the children map head follows.
const NODE_START: [u8; 3] = [MAJOR_MAP | 2, MAJOR_TEXT | 1, b'c'];
/// `"v": ` key of the value entry.
const VALUE_KEY: [u8; 2] = [MAJOR_TEXT | 1, b'v'];
/// One child entry is `"tt": "<64 hex>"`: 3 + 2 + 64 bytes.
const CHILD_ENTRY_LEN: usize = 69;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The two lowercase hex characters of every byte: one lookup per byte when encoding the
/// 64-character child hashes, which is most of the bytes this module writes.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0x0f]];
        byte += 1;
    }
    pairs
};

fn hash(bytes: &[u8]) -> NodeHash {
    let digest = Sha512::digest(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

/// Lowercase hex of a node hash, as Sawtooth prints state roots.
pub(crate) fn to_hex(hash: &NodeHash) -> String {
    let mut out = String::with_capacity(64);
    for byte in hash {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// CBOR head with the shortest length encoding (Python `cbor.dumps`, RFC 8949 preferred).
pub(crate) fn push_minimal_head(buf: &mut Vec<u8>, major: u8, len: u64) {
    match len {
        0..=23 => buf.push(major | len as u8),
        24..=0xff => buf.extend_from_slice(&[major | 24, len as u8]),
        0x100..=0xffff => {
            buf.push(major | 25);
            buf.extend_from_slice(&(len as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            buf.push(major | 26);
            buf.extend_from_slice(&(len as u32).to_be_bytes());
        }
        _ => {
            buf.push(major | 27);
            buf.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// CBOR head exactly as `cbor-codec` 0.7 writes it (see the module doc for the 64 KiB quirk).
pub(crate) fn push_codec_head(buf: &mut Vec<u8>, major: u8, len: u64) {
    match len {
        0x1_0000..=0xf_ffff => {
            buf.push(major | 27);
            buf.extend_from_slice(&len.to_be_bytes());
        }
        _ => push_minimal_head(buf, major, len),
    }
}

/// One child entry of the children map: `"tt": "<64 hex of the child hash>"`.
fn child_entry(token: u8, child: &NodeHash) -> [u8; CHILD_ENTRY_LEN] {
    let mut entry = [0u8; CHILD_ENTRY_LEN];
    entry[..5].copy_from_slice(&[
        MAJOR_TEXT | 2,
        HEX[usize::from(token >> 4)],
        HEX[usize::from(token & 0x0f)],
        MAJOR_TEXT | 24,
        64,
    ]);
    for (pair, &byte) in entry[5..].chunks_exact_mut(2).zip(child) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    entry
}

/// Hash of the node with no children and no value: the root of an empty tree.
pub(crate) fn empty_node_hash() -> NodeHash {
    hash(&[
        NODE_START[0],
        NODE_START[1],
        NODE_START[2],
        MAJOR_MAP,
        VALUE_KEY[0],
        VALUE_KEY[1],
        NULL,
    ])
}

/// Hash of an inner node with exactly one child: the shape of most of a 35-level path.
/// Encoded on the stack: this runs about 33 times per written address.
pub(crate) fn single_child_hash(token: u8, child: &NodeHash) -> NodeHash {
    let mut node = [0u8; 4 + CHILD_ENTRY_LEN + 3];
    node[..4].copy_from_slice(&[NODE_START[0], NODE_START[1], NODE_START[2], MAJOR_MAP | 1]);
    node[4..4 + CHILD_ENTRY_LEN].copy_from_slice(&child_entry(token, child));
    node[4 + CHILD_ENTRY_LEN..].copy_from_slice(&[VALUE_KEY[0], VALUE_KEY[1], NULL]);
    hash(&node)
}

/// Hash of an inner node whose children are `(token, child hash)` in ascending token order.
/// `scratch` is reused between calls so wide nodes near the root do not allocate each time.
pub(crate) fn branch_hash<'a>(
    children: impl ExactSizeIterator<Item = (u8, &'a NodeHash)>,
    scratch: &mut Vec<u8>,
) -> NodeHash {
    scratch.clear();
    scratch.reserve(8 + children.len() * CHILD_ENTRY_LEN);
    scratch.extend_from_slice(&NODE_START);
    push_codec_head(scratch, MAJOR_MAP, children.len() as u64);
    for (token, child) in children {
        scratch.extend_from_slice(&child_entry(token, child));
    }
    scratch.extend_from_slice(&VALUE_KEY);
    scratch.push(NULL);
    hash(scratch)
}

/// Hash of a leaf holding `value`, CBOR-wrapped the way a Sawtooth 1.2 validator stores it:
/// the node's "v" is a byte string whose content is the CBOR byte string of `value`.
pub(crate) fn leaf_hash(value: &[u8]) -> NodeHash {
    let mut inner_head = Vec::with_capacity(9);
    push_minimal_head(&mut inner_head, MAJOR_BYTES, value.len() as u64);
    let wrapped_len = (inner_head.len() + value.len()) as u64;

    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&NODE_START);
    head.push(MAJOR_MAP);
    head.extend_from_slice(&VALUE_KEY);
    push_codec_head(&mut head, MAJOR_BYTES, wrapped_len);
    head.extend_from_slice(&inner_head);
    if head.len() + value.len() <= 256 {
        // Small values (the usual case) are hashed in one call from the stack.
        let mut node = [0u8; 256];
        node[..head.len()].copy_from_slice(&head);
        node[head.len()..head.len() + value.len()].copy_from_slice(value);
        return hash(&node[..head.len() + value.len()]);
    }
    let mut hasher = Sha512::new();
    hasher.update(&head);
    hasher.update(value);
    let digest = hasher.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_heads_use_the_shortest_length_field() {
        let cases: [(u64, &[u8]); 6] = [
            (23, &[0x57]),
            (24, &[0x58, 24]),
            (255, &[0x58, 0xff]),
            (256, &[0x59, 0x01, 0x00]),
            (0x1_0000, &[0x5a, 0, 1, 0, 0]),
            (0x1_0000_0000, &[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (len, expected) in cases {
            let mut buf = Vec::new();
            push_minimal_head(&mut buf, MAJOR_BYTES, len);
            assert_eq!(buf, expected, "length {len}");
        }
    }

    #[test]
    fn codec_heads_use_eight_bytes_between_64k_and_1m() {
        let mut buf = Vec::new();
        push_codec_head(&mut buf, MAJOR_BYTES, 0x1_0000);
        assert_eq!(buf, [0x5b, 0, 0, 0, 0, 0, 1, 0, 0]);
        buf.clear();
        push_codec_head(&mut buf, MAJOR_BYTES, 0x10_0000);
        assert_eq!(buf, [0x5a, 0, 0x10, 0, 0]);
        buf.clear();
        push_codec_head(&mut buf, MAJOR_BYTES, 0xffff);
        assert_eq!(buf, [0x59, 0xff, 0xff]);
    }

    #[test]
    fn single_child_hash_equals_branch_hash_with_one_child() {
        let child = [7u8; 32];
        let mut scratch = Vec::new();
        let via_branch = branch_hash([(0xab, &child)].into_iter(), &mut scratch);
        assert_eq!(single_child_hash(0xab, &child), via_branch);
    }

    #[test]
    fn branch_with_no_children_is_the_empty_node() {
        let mut scratch = Vec::new();
        let none: [(u8, &NodeHash); 0] = [];
        assert_eq!(
            branch_hash(none.into_iter(), &mut scratch),
            empty_node_hash()
        );
    }

    #[test]
    fn hex_is_lowercase_and_64_characters() {
        let text = to_hex(&[0xAB; 32]);
        assert_eq!(text.len(), 64);
        assert_eq!(text, "ab".repeat(32));
    }
}
