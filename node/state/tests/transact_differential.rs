//! Differential tests: `MerkleRadix` must give exactly the roots Hyperledger Transact's
//! `MerkleState` gives for the same leaves with CBOR-wrapped values — the roots a Sawtooth 1.2
//! validator computes. Random workloads of sets and deletes over several steps; roots are
//! compared at every step, leaves and values at the end.

mod support;

use std::collections::BTreeSet;

use coldchain_state::{MerkleRadix, StateChange};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::transact::TransactReference;

const NAMESPACES: [&str; 3] = ["1cf126", "1cf127", "000000"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new address: random, or sharing a random-length prefix with a live one so that the tree
/// splits and merges paths deep down, not only near the root.
fn fresh_address(rng: &mut StdRng, live: &BTreeSet<String>) -> String {
    loop {
        let mut tail = [0u8; 32];
        rng.fill(&mut tail);
        let random = format!("{}{}", NAMESPACES[rng.gen_range(0..3)], hex(&tail));
        let address = if !live.is_empty() && rng.gen_bool(0.4) {
            let index = rng.gen_range(0..live.len());
            let Some(near) = live.iter().nth(index) else {
                continue;
            };
            let keep = rng.gen_range(6..70);
            format!("{}{}", &near[..keep], &random[keep..])
        } else {
            random
        };
        if !live.contains(&address) {
            return address;
        }
    }
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    // Lengths around every CBOR head size boundary.
    let len = match rng.gen_range(0..10) {
        0 => 0,
        1 => rng.gen_range(20..30),
        2 => rng.gen_range(250..260),
        _ => rng.gen_range(1..120),
    };
    (0..len).map(|_| rng.gen()).collect()
}

/// One step's changes: sets of new and live addresses, deletes of live ones, each address at
/// most once (Transact applies all deletes after all sets within a commit, so repeating an
/// address inside one commit is not a like-for-like comparison).
fn random_step(rng: &mut StdRng, live: &mut BTreeSet<String>, size: usize) -> Vec<StateChange> {
    let mut touched = BTreeSet::new();
    let mut changes = Vec::with_capacity(size);
    for _ in 0..size {
        let roll = rng.gen_range(0..10);
        if roll < 3 && !live.is_empty() {
            let index = rng.gen_range(0..live.len());
            let Some(address) = live.iter().nth(index).cloned() else {
                continue;
            };
            if !touched.insert(address.clone()) {
                continue;
            }
            if roll == 0 {
                live.remove(&address);
                changes.push(StateChange::Delete { address });
            } else {
                changes.push(StateChange::Set {
                    address,
                    value: random_value(rng),
                });
            }
        } else {
            let address = fresh_address(rng, live);
            if !touched.insert(address.clone()) {
                continue;
            }
            live.insert(address.clone());
            changes.push(StateChange::Set {
                address,
                value: random_value(rng),
            });
        }
    }
    changes
}

fn assert_same_leaves(ours: &MerkleRadix, reference: &TransactReference, prefix: &str) {
    let ours: Vec<(String, Vec<u8>)> = ours
        .leaves_with_prefix(prefix)
        .map(|(a, v)| (a.to_string(), v.to_vec()))
        .collect();
    assert_eq!(ours, reference.leaves(prefix), "leaves under {prefix:?}");
}

fn run_workload(seed: u64, steps: usize, step_size: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ours = MerkleRadix::new();
    let mut reference = TransactReference::in_memory();
    assert_eq!(ours.root(), reference.root(), "empty roots differ");
    let mut live = BTreeSet::new();
    for step in 0..steps {
        let size = rng.gen_range(1..=step_size);
        let changes = random_step(&mut rng, &mut live, size);
        let predicted = ours.root_after(&changes).unwrap();
        let expected = reference.commit(&changes);
        let got = ours.apply(&changes).unwrap();
        assert_eq!(got, expected, "seed {seed} step {step}: roots differ");
        assert_eq!(
            predicted, expected,
            "seed {seed} step {step}: root_after differs"
        );
        assert_eq!(ours.len(), live.len());
    }
    assert_same_leaves(&ours, &reference, "");
    assert_same_leaves(&ours, &reference, "1cf126");
    let rebuilt = MerkleRadix::from_leaves(reference.leaves("")).unwrap();
    assert_eq!(
        rebuilt.root(),
        reference.root(),
        "seed {seed}: rebuilt root differs"
    );
}

#[test]
fn roots_match_transact_on_random_workloads_of_small_steps() {
    for seed in 0..6 {
        run_workload(seed, 60, 12);
    }
}

#[test]
fn roots_match_transact_on_block_sized_steps() {
    run_workload(1_000, 8, 400);
}

#[test]
fn roots_match_transact_when_everything_is_deleted_again() {
    let mut rng = StdRng::seed_from_u64(77);
    let mut ours = MerkleRadix::new();
    let mut reference = TransactReference::in_memory();
    let mut live = BTreeSet::new();
    for _ in 0..5 {
        let changes = random_step(&mut rng, &mut live, 80);
        assert_eq!(ours.apply(&changes).unwrap(), reference.commit(&changes));
    }
    let all: Vec<String> = live.into_iter().collect();
    for chunk in all.chunks(37) {
        let deletes: Vec<StateChange> = chunk
            .iter()
            .map(|address| StateChange::Delete {
                address: address.clone(),
            })
            .collect();
        assert_eq!(ours.apply(&deletes).unwrap(), reference.commit(&deletes));
    }
    assert_eq!(ours.root(), MerkleRadix::empty_root());
    assert_eq!(reference.root(), MerkleRadix::empty_root());
}

#[test]
fn roots_match_transact_when_updates_hit_saturated_wide_nodes() {
    // 3 000 leaves in one namespace fill all 256 children of the node below it, so updates
    // there re-hash that node by resuming from a mid-encoding checkpoint.
    let mut rng = StdRng::seed_from_u64(5);
    let mut ours = MerkleRadix::new();
    let mut reference = TransactReference::in_memory();
    let addresses: Vec<String> = (0..3_000)
        .map(|_| {
            let tail: [u8; 32] = rng.gen();
            format!("1cf126{}", hex(&tail))
        })
        .collect();
    let fill: Vec<StateChange> = addresses
        .iter()
        .map(|address| StateChange::Set {
            address: address.clone(),
            value: vec![1],
        })
        .collect();
    assert_eq!(ours.apply(&fill).unwrap(), reference.commit(&fill));
    for step in 0..25 {
        let mut touched = BTreeSet::new();
        let changes: Vec<StateChange> = (0..rng.gen_range(1..6))
            .filter_map(|_| {
                let address = addresses[rng.gen_range(0..addresses.len())].clone();
                touched.insert(address.clone()).then(|| StateChange::Set {
                    address,
                    value: random_value(&mut rng),
                })
            })
            .collect();
        assert_eq!(
            ours.apply(&changes).unwrap(),
            reference.commit(&changes),
            "update step {step}"
        );
    }
}

#[test]
fn large_values_match_transact_including_its_64k_length_head() {
    // Lengths on both sides of the 64 KiB and 1 MiB head boundaries, where the validator's
    // CBOR encoder writes an 8-byte length head for 64 KiB..1 MiB.
    let mut ours = MerkleRadix::new();
    let mut reference = TransactReference::in_memory();
    for (n, len) in [65_530usize, 65_533, 65_536, 70_000, 1_048_570, 1_048_576]
        .into_iter()
        .enumerate()
    {
        let changes = vec![StateChange::Set {
            address: format!("1cf126{:064x}", n + 1),
            value: vec![n as u8; len],
        }];
        assert_eq!(
            ours.apply(&changes).unwrap(),
            reference.commit(&changes),
            "value of {len} bytes"
        );
    }
}

#[test]
fn unwrapped_values_give_a_different_root_than_the_validator() {
    // Guards the CBOR wrapping: storing raw values (as a naive port would) parts ways.
    let changes = [StateChange::Set {
        address: format!("1cf126{}", "ab".repeat(32)),
        value: b"reading".to_vec(),
    }];
    let mut ours = MerkleRadix::new();
    let root = ours.apply(&changes).unwrap();
    assert_eq!(root, TransactReference::in_memory().commit(&changes));
    assert_ne!(
        root,
        TransactReference::in_memory().commit_unwrapped(&changes)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn roots_match_transact_for_arbitrary_small_histories(
        steps in prop::collection::vec(
            prop::collection::btree_map(
                (0usize..3, 0u16..40),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
                1..10,
            ),
            1..8,
        )
    ) {
        let mut ours = MerkleRadix::new();
        let mut reference = TransactReference::in_memory();
        let mut live = BTreeSet::new();
        for step in steps {
            let mut changes = Vec::new();
            for ((namespace, n), value) in step {
                // Small index space, so the same addresses come back across steps.
                let address = format!("{}{:064x}", NAMESPACES[namespace], u64::from(n) * 0x0101_0101);
                match value {
                    Some(value) => {
                        live.insert(address.clone());
                        changes.push(StateChange::Set { address, value });
                    }
                    None if live.remove(&address) => changes.push(StateChange::Delete { address }),
                    None => {}
                }
            }
            prop_assert_eq!(ours.root_after(&changes).unwrap(), reference.compute_root(&changes));
            prop_assert_eq!(ours.apply(&changes).unwrap(), reference.commit(&changes));
        }
    }
}
