//! State addresses: validation and the split into the 35 one-byte tokens the tree branches on.
//!
//! A Sawtooth address is 70 lowercase hex characters; each pair of characters is one level of
//! the Merkle-radix tree. This module only parses; it does not know the tree.

use crate::StateError;

/// Number of hex characters in a state address.
pub const ADDRESS_LENGTH: usize = 70;
/// Number of tree levels below the root: one per pair of hex characters.
pub(crate) const TOKENS: usize = ADDRESS_LENGTH / 2;

/// The address as tree tokens: `tokens[i]` is the byte written by hex characters `2i..2i+2`.
pub(crate) type Tokens = [u8; TOKENS];

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Parses a 70-character lowercase hex address into tree tokens.
pub(crate) fn parse(address: &str) -> Result<Tokens, StateError> {
    let bytes = address.as_bytes();
    if bytes.len() != ADDRESS_LENGTH {
        return Err(StateError::BadAddress(address.to_string()));
    }
    let mut tokens = [0u8; TOKENS];
    for (token, pair) in tokens.iter_mut().zip(bytes.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => *token = (high << 4) | low,
            _ => return Err(StateError::BadAddress(address.to_string())),
        }
    }
    Ok(tokens)
}

/// Parses an address prefix (0 to 70 lowercase hex characters, odd lengths allowed) into
/// nibbles. `None` when it cannot be the start of any address.
pub(crate) fn parse_prefix(prefix: &str) -> Option<Vec<u8>> {
    if prefix.len() > ADDRESS_LENGTH {
        return None;
    }
    prefix.bytes().map(nibble).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_splits_into_byte_tokens() {
        let address = format!("0a1b2c{}", "f".repeat(64));
        let tokens = parse(&address).unwrap();
        assert_eq!(&tokens[..3], &[0x0a, 0x1b, 0x2c]);
        assert!(tokens[3..].iter().all(|&t| t == 0xff));
    }

    #[test]
    fn uppercase_short_long_and_non_hex_addresses_are_refused() {
        let good = "a".repeat(70);
        assert!(parse(&good).is_ok());
        for bad in [
            "A".repeat(70),
            "a".repeat(69),
            "a".repeat(71),
            format!("{}g", "a".repeat(69)),
            format!("{}é", "a".repeat(68)),
            String::new(),
        ] {
            match parse(&bad) {
                Err(StateError::BadAddress(named)) => assert_eq!(named, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn prefixes_may_have_odd_length_but_must_be_lowercase_hex() {
        assert_eq!(parse_prefix("a1f"), Some(vec![0xa, 0x1, 0xf]));
        assert_eq!(parse_prefix(""), Some(vec![]));
        assert_eq!(parse_prefix("A1"), None);
        assert_eq!(parse_prefix(&"0".repeat(71)), None);
    }
}
