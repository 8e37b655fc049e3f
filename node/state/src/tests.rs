//! Behaviour of the public API on small trees. Agreement with Hyperledger Transact on random
//! workloads is in `tests/transact_differential.rs`.

use super::*;

fn address(namespace: &str, n: u64) -> String {
    format!("{namespace}{:064x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn set(address: &str, value: &[u8]) -> StateChange {
    StateChange::Set {
        address: address.to_string(),
        value: value.to_vec(),
    }
}

fn delete(address: &str) -> StateChange {
    StateChange::Delete {
        address: address.to_string(),
    }
}

#[test]
fn empty_tree_root_is_hash_of_node_without_children_or_value() {
    // SHA-512 of a2 61 63 a0 61 76 f6 = {"c": {}, "v": null}, first 32 bytes.
    let expected = "708ca7fbb701799bb387f2e50deaca402e8502abe229f705693d2d4f350e1ad6";
    assert_eq!(MerkleRadix::empty_root(), expected);
    assert_eq!(MerkleRadix::new().root(), expected);
    assert!(MerkleRadix::new().is_empty());
}

#[test]
fn single_leaf_root_matches_hand_computed_sawtooth_root() {
    // Computed independently (a few lines of Python over the 36 uncompressed nodes, value
    // CBOR-wrapped twice as a Sawtooth 1.2 validator stores it).
    let address = format!("1cf126{}", "ab".repeat(32));
    let mut tree = MerkleRadix::new();
    let root = tree.apply(&[set(&address, b"hello")]).unwrap();
    assert_eq!(
        root,
        "4a7e1ec62a3ce73c4088a9a0b0f0724c8b3e1d89b77caa613c1e99d63206c641"
    );
    assert_eq!(tree.get(&address), Some(&b"hello"[..]));
    assert_eq!(tree.len(), 1);
}

#[test]
fn updating_a_value_changes_the_root_and_setting_it_back_restores_it() {
    let a = address("1cf126", 1);
    let b = address("1cf126", 2);
    let mut tree = MerkleRadix::new();
    let first = tree.apply(&[set(&a, b"one"), set(&b, b"two")]).unwrap();
    let updated = tree.apply(&[set(&a, b"uno")]).unwrap();
    assert_ne!(first, updated);
    assert_eq!(tree.get(&a), Some(&b"uno"[..]));
    assert_eq!(tree.len(), 2);
    assert_eq!(tree.apply(&[set(&a, b"one")]).unwrap(), first);
}

#[test]
fn deleting_every_leaf_returns_to_the_empty_root() {
    let addresses: Vec<String> = (0..50).map(|n| address("1cf126", n)).collect();
    let mut tree = MerkleRadix::new();
    let sets: Vec<_> = addresses.iter().map(|a| set(a, a.as_bytes())).collect();
    tree.apply(&sets).unwrap();
    assert_eq!(tree.len(), 50);
    let deletes: Vec<_> = addresses.iter().map(|a| delete(a)).collect();
    assert_eq!(tree.apply(&deletes).unwrap(), MerkleRadix::empty_root());
    assert!(tree.is_empty());
    assert_eq!(tree.get(&addresses[0]), None);
}

#[test]
fn deleting_a_leaf_gives_the_root_of_the_tree_that_never_had_it() {
    let kept = [address("1cf126", 1), address("1cf126", 2)];
    // Shares a long prefix with kept[0], so its removal must merge branches back.
    let doomed = format!("{}{}", &kept[0][..60], "0123456789");
    let mut with = MerkleRadix::new();
    with.apply(&[set(&kept[0], b"a"), set(&kept[1], b"b"), set(&doomed, b"c")])
        .unwrap();
    let after_delete = with.apply(&[delete(&doomed)]).unwrap();
    let mut without = MerkleRadix::new();
    let expected = without
        .apply(&[set(&kept[0], b"a"), set(&kept[1], b"b")])
        .unwrap();
    assert_eq!(after_delete, expected);
    assert_eq!(with.stored_node_count(), without.stored_node_count());
}

#[test]
fn root_does_not_depend_on_the_order_or_grouping_of_writes() {
    let changes: Vec<_> = (0..200)
        .map(|n| {
            set(
                &address(if n % 3 == 0 { "000000" } else { "1cf126" }, n),
                &[n as u8],
            )
        })
        .collect();
    let mut forward = MerkleRadix::new();
    let forward_root = forward.apply(&changes).unwrap();
    let mut backward = MerkleRadix::new();
    for change in changes.iter().rev() {
        backward.apply(std::slice::from_ref(change)).unwrap();
    }
    assert_eq!(backward.root(), forward_root);
}

#[test]
fn later_change_to_the_same_address_wins_within_one_apply() {
    let a = address("1cf126", 7);
    let mut tree = MerkleRadix::new();
    let root = tree.apply(&[set(&a, b"x"), delete(&a)]).unwrap();
    assert_eq!(root, MerkleRadix::empty_root());
    tree.apply(&[delete(&a), set(&a, b"y"), set(&a, b"z")])
        .unwrap();
    assert_eq!(tree.get(&a), Some(&b"z"[..]));
}

#[test]
fn deleting_an_absent_address_changes_nothing() {
    let mut tree = MerkleRadix::new();
    let root = tree.apply(&[set(&address("1cf126", 1), b"v")]).unwrap();
    assert_eq!(tree.apply(&[delete(&address("1cf126", 2))]).unwrap(), root);
    assert_eq!(tree.len(), 1);
}

#[test]
fn empty_value_is_stored_and_differs_from_no_value() {
    let a = address("1cf126", 1);
    let mut tree = MerkleRadix::new();
    let root = tree.apply(&[set(&a, b"")]).unwrap();
    assert_ne!(root, MerkleRadix::empty_root());
    assert_eq!(tree.get(&a), Some(&b""[..]));
}

#[test]
fn prefix_listing_is_sorted_and_limited_to_the_prefix() {
    let mut tree = MerkleRadix::new();
    let mut changes: Vec<_> = (0..40).map(|n| set(&address("1cf126", n), b"r")).collect();
    changes.extend((0..10).map(|n| set(&address("000000", n), b"s")));
    changes.push(set(&format!("1cf127{}", "0".repeat(64)), b"t"));
    tree.apply(&changes).unwrap();

    let listed: Vec<&str> = tree.leaves_with_prefix("1cf126").map(|(a, _)| a).collect();
    let mut expected: Vec<String> = (0..40).map(|n| address("1cf126", n)).collect();
    expected.sort();
    assert_eq!(listed, expected);

    assert_eq!(tree.leaves_with_prefix("").count(), 51);
    // Odd-length prefixes split a token.
    assert_eq!(tree.leaves_with_prefix("1cf12").count(), 41);
    assert_eq!(tree.leaves_with_prefix("00000").count(), 10);
    let one = &expected[3];
    let exact: Vec<_> = tree.leaves_with_prefix(one).collect();
    assert_eq!(exact, vec![(one.as_str(), &b"r"[..])]);
    assert_eq!(tree.leaves_with_prefix("1cf128").count(), 0);
    assert_eq!(tree.leaves_with_prefix("1CF126").count(), 0);
    assert_eq!(tree.leaves_with_prefix(&"0".repeat(71)).count(), 0);
}

#[test]
fn bad_addresses_are_refused_by_name_and_leave_the_tree_untouched() {
    let good = address("1cf126", 1);
    let mut tree = MerkleRadix::new();
    let before = tree.root();
    for bad in [
        good.to_uppercase(),
        good[..69].to_string(),
        format!("{good}0"),
        format!("{}z", &good[..69]),
    ] {
        let err = tree
            .apply(&[set(&good, b"ok"), set(&bad, b"no")])
            .unwrap_err();
        assert_eq!(err, StateError::BadAddress(bad.clone()));
        assert!(err.to_string().contains(&bad), "{err}");
        assert_eq!(tree.root(), before);
        assert!(tree.is_empty());
        assert_eq!(
            tree.root_after(&[delete(&bad)]),
            Err(StateError::BadAddress(bad.clone()))
        );
        assert!(MerkleRadix::from_leaves([(bad.clone(), vec![1])]).is_err());
        assert_eq!(tree.get(&bad), None);
    }
}

#[test]
fn root_after_predicts_apply_without_changing_the_tree() {
    let mut tree = MerkleRadix::new();
    let base: Vec<_> = (0..300)
        .map(|n| set(&address("1cf126", n), &n.to_be_bytes()))
        .collect();
    tree.apply(&base).unwrap();
    let before = tree.root();
    let mut next: Vec<_> = (0..300)
        .step_by(3)
        .map(|n| delete(&address("1cf126", n)))
        .collect();
    next.extend((250..400).map(|n| set(&address("1cf126", n), b"new")));
    next.push(set(
        &format!("{}{}", &address("1cf126", 1)[..50], "f".repeat(20)),
        b"deep",
    ));
    next.push(delete(&address("1cf126", 1)));

    let predicted = tree.root_after(&next).unwrap();
    assert_eq!(tree.root(), before);
    assert_eq!(tree.apply(&next).unwrap(), predicted);
    assert_eq!(tree.root_after(&[]).unwrap(), tree.root());
}

#[test]
fn from_leaves_rebuilds_the_same_root_and_refuses_duplicates() {
    let mut tree = MerkleRadix::new();
    let changes: Vec<_> = (0..500)
        .map(|n| set(&address("1cf126", n), &[n as u8; 3]))
        .collect();
    let root = tree.apply(&changes).unwrap();
    let mut stored: Vec<(String, Vec<u8>)> = tree
        .leaves_with_prefix("")
        .map(|(a, v)| (a.to_string(), v.to_vec()))
        .collect();
    stored.reverse();
    let rebuilt = MerkleRadix::from_leaves(stored.clone()).unwrap();
    assert_eq!(rebuilt.root(), root);
    assert_eq!(rebuilt.len(), 500);

    let mut doubled = stored;
    doubled.push(doubled[0].clone());
    let duplicate = doubled[0].0.clone();
    assert_eq!(
        MerkleRadix::from_leaves(doubled).unwrap_err(),
        StateError::DuplicateAddress(duplicate)
    );
}

#[test]
fn hashing_on_two_threads_gives_the_same_roots_as_one() {
    let mut parallel = MerkleRadix::new();
    let mut sequential = MerkleRadix::new();
    sequential.set_parallel_hashing(false);
    for round in 0..4u64 {
        let changes: Vec<_> = (0..1_000)
            .map(|n| match (n + round) % 7 {
                0 => delete(&address("1cf126", n * 3 + round)),
                _ => set(
                    &address(["1cf126", "000000"][n as usize % 2], n * 5 + round),
                    &[round as u8],
                ),
            })
            .collect();
        assert!(changes.len() >= PARALLEL_HASHING_FROM);
        assert_eq!(
            parallel.apply(&changes).unwrap(),
            sequential.apply(&changes).unwrap()
        );
    }
    let rebuilt = MerkleRadix::from_leaves(
        sequential
            .leaves_with_prefix("")
            .map(|(a, v)| (a.to_string(), v.to_vec())),
    )
    .unwrap();
    assert_eq!(rebuilt.root(), parallel.root());
}
