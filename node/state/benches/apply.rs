//! Throughput of the state tree: block-sized `apply` on a populated tree, `root_after`, and
//! start-up rebuilds with `from_leaves`. Optionally the same block workload through
//! Hyperledger Transact's `MerkleState` (in memory and over LMDB) for comparison.
//!
//! Run: `cargo bench -p coldchain-state` (add `-- --transact` for the Transact baseline,
//! `-- --quick` to skip the 1M-leaf rebuild). Results go to stdout; record them with the
//! machine in docs/benchmarks/state.md.

#[path = "../tests/support/transact.rs"]
mod transact_reference;

use std::time::{Duration, Instant};

use coldchain_state::{MerkleRadix, StateChange};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use transact_reference::TransactReference;

const VALUE_LEN: usize = 120;
const BLOCK: usize = 2_000;

fn random_address(rng: &mut StdRng) -> String {
    let tail: [u8; 32] = rng.gen();
    let namespace = ["1cf126", "1cf127", "1cf128", "000000"][rng.gen_range(0..4)];
    let mut address = String::with_capacity(70);
    address.push_str(namespace);
    for byte in tail {
        address.push_str(&format!("{byte:02x}"));
    }
    address
}

fn random_value(rng: &mut StdRng) -> Vec<u8> {
    (0..VALUE_LEN).map(|_| rng.gen()).collect()
}

fn leaves(rng: &mut StdRng, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|_| (random_address(rng), random_value(rng)))
        .collect()
}

/// Blocks of `BLOCK` writes: half updates of existing addresses, half new addresses (readings
/// and custody records add entries; lots and shipments get updated).
fn blocks(rng: &mut StdRng, existing: &[(String, Vec<u8>)], count: usize) -> Vec<Vec<StateChange>> {
    mixed_blocks(rng, existing, count, 2)
}

/// Blocks where one write in `new_every` creates an address and the rest update existing ones
/// (`new_every == usize::MAX`: updates only).
fn mixed_blocks(
    rng: &mut StdRng,
    existing: &[(String, Vec<u8>)],
    count: usize,
    new_every: usize,
) -> Vec<Vec<StateChange>> {
    (0..count)
        .map(|_| {
            (0..BLOCK)
                .map(|i| {
                    let address = if i % new_every != new_every - 1 {
                        existing[rng.gen_range(0..existing.len())].0.clone()
                    } else {
                        random_address(rng)
                    };
                    StateChange::Set {
                        address,
                        value: random_value(rng),
                    }
                })
                .collect()
        })
        .collect()
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// CPU time of this thread (ns), from the scheduler: unlike wall time it does not count time
/// the thread waited for a core, so numbers stay comparable on a busy machine.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time of the whole process (all threads), user + system, in clock ticks of 10 ms.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.rsplit(')').next()?.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        });
    Duration::from_millis(ticks.unwrap_or(0) * 10)
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn bench_rebuild(rng: &mut StdRng, count: usize) -> MerkleRadix {
    let stored = leaves(rng, count);
    let (started, process_started) = (Instant::now(), process_cpu());
    let tree = match MerkleRadix::from_leaves(stored) {
        Ok(tree) => tree,
        Err(err) => panic!("benchmark leaves are valid: {err}"),
    };
    let elapsed = started.elapsed();
    println!(
        "rebuild {count:>9} leaves: {:>8.1} ms wall, {:>8.1} ms CPU (2 threads), {} stored nodes, peak RSS so far {:.0} MiB",
        elapsed.as_secs_f64() * 1e3,
        (process_cpu() - process_started).as_secs_f64() * 1e3,
        tree.stored_node_count(),
        peak_rss_mib().unwrap_or(f64::NAN),
    );
    tree
}

fn bench_apply(tree: &mut MerkleRadix, workload: &[Vec<StateChange>], label: &str) {
    let block = workload.first().map_or(0, Vec::len);
    let (started, thread_started, process_started) = (Instant::now(), thread_cpu(), process_cpu());
    for changes in workload {
        if let Err(err) = tree.apply(changes) {
            panic!("benchmark changes are valid: {err}");
        }
    }
    let elapsed = started.elapsed();
    let (thread_time, process_time) = (
        thread_cpu() - thread_started,
        process_cpu() - process_started,
    );
    let writes = workload.len() * block;
    println!(
        "apply  {label:<30} {:>4} blocks x {block:>4}: {:>8.0} writes/s wall ({:>6.2} ms/block), \
         {:>8.0} writes per CPU-second of this thread, {:>8.0} per CPU-second of the process",
        workload.len(),
        per_second(writes, elapsed),
        elapsed.as_secs_f64() * 1e3 / workload.len() as f64,
        per_second(writes, thread_time),
        per_second(writes, process_time),
    );
}

/// Calibration: how many one-block SHA-512 hashes this core does per CPU-second. A write
/// costs about 31 of those for its own path plus a share of the wide nodes near the top.
fn bench_sha512() {
    use sha2::{Digest, Sha512};
    let mut input = [7u8; 76];
    let count = 500_000;
    let started = thread_cpu();
    for i in 0..count {
        let digest = Sha512::digest(input);
        input[..32].copy_from_slice(&digest[..32]);
        input[40] = i as u8;
    }
    println!(
        "calibration: {:.0} SHA-512 of a 76-byte node per CPU-second",
        per_second(count, thread_cpu() - started)
    );
}

fn bench_root_after(tree: &MerkleRadix, workload: &[Vec<StateChange>]) {
    let (started, thread_started) = (Instant::now(), thread_cpu());
    for block in workload {
        if let Err(err) = tree.root_after(block) {
            panic!("benchmark changes are valid: {err}");
        }
    }
    let elapsed = started.elapsed();
    println!(
        "root_after, 100k leaves (tree unchanged) {:>4} blocks x {BLOCK}: {:>8.0} writes/s wall, {:>8.0} per CPU-second",
        workload.len(),
        per_second(workload.len() * BLOCK, elapsed),
        per_second(workload.len() * BLOCK, thread_cpu() - thread_started),
    );
}

fn bench_transact(
    mut reference: TransactReference,
    label: &str,
    base: &[(String, Vec<u8>)],
    workload: &[Vec<StateChange>],
) {
    let preload: Vec<StateChange> = base
        .iter()
        .map(|(address, value)| StateChange::Set {
            address: address.clone(),
            value: value.clone(),
        })
        .collect();
    let started = Instant::now();
    for chunk in preload.chunks(BLOCK) {
        reference.commit(chunk);
    }
    let preload_time = started.elapsed();
    let started = Instant::now();
    for block in workload {
        reference.commit(block);
    }
    let elapsed = started.elapsed();
    println!(
        "transact {label:<10} preload {} leaves: {:>7.0} writes/s; blocks of {BLOCK}: {:>7.0} writes/s ({:.0} ms per block)",
        base.len(),
        per_second(base.len(), preload_time),
        per_second(workload.len() * BLOCK, elapsed),
        elapsed.as_secs_f64() * 1e3 / workload.len() as f64,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let with_transact = args.iter().any(|arg| arg == "--transact");
    let quick = args.iter().any(|arg| arg == "--quick");
    let mut rng = StdRng::seed_from_u64(2026);

    bench_sha512();
    println!("value size {VALUE_LEN} bytes, random addresses over 4 namespaces");
    let base = leaves(&mut rng, 100_000);
    let mut tree = match MerkleRadix::from_leaves(base.clone()) {
        Ok(tree) => tree,
        Err(err) => panic!("benchmark leaves are valid: {err}"),
    };
    let workload = blocks(&mut rng, &base, 20);

    bench_root_after(&tree, &workload);
    let mut sequential = tree.clone();
    sequential.set_parallel_hashing(false);
    bench_apply(&mut sequential, &workload, "100k leaves, 1 thread");
    drop(sequential);
    bench_apply(&mut tree, &workload, "100k leaves, 2 threads");
    let updates = mixed_blocks(&mut rng, &base, 20, usize::MAX);
    tree.set_parallel_hashing(false);
    bench_apply(&mut tree, &updates, "100k leaves, updates, 1 thread");
    tree.set_parallel_hashing(true);

    let small_blocks: Vec<Vec<StateChange>> = blocks(&mut rng, &base, 20)
        .into_iter()
        .flat_map(|block| {
            block
                .chunks(200)
                .map(<[StateChange]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    bench_apply(&mut tree, &small_blocks, "100k leaves, 1 thread");
    drop(tree);

    bench_rebuild(&mut rng, 100_000);
    if !quick {
        let mut big = bench_rebuild(&mut rng, 1_000_000);
        let big_base: Vec<(String, Vec<u8>)> = big
            .leaves_with_prefix("")
            .step_by(97)
            .map(|(a, v)| (a.to_string(), v.to_vec()))
            .collect();
        let big_workload = blocks(&mut rng, &big_base, 20);
        let (first, second) = big_workload.split_at(10);
        big.set_parallel_hashing(false);
        bench_apply(&mut big, first, "1M leaves, 1 thread");
        big.set_parallel_hashing(true);
        bench_apply(&mut big, second, "1M leaves, 2 threads");
    }

    if with_transact {
        let transact_base = &base[..20_000];
        let transact_workload = blocks(&mut rng, transact_base, 3);
        bench_transact(
            TransactReference::in_memory(),
            "in-memory",
            transact_base,
            &transact_workload,
        );
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(err) => panic!("temporary directory for LMDB: {err}"),
        };
        bench_transact(
            TransactReference::over_lmdb(&dir.path().join("merkle.lmdb")),
            "LMDB",
            transact_base,
            &transact_workload,
        );
    }
}
