//! Kill -9 at arbitrary moments under load, restart on the same data
//! directory: every batch ever reported COMMITTED is still committed with its
//! state, the chain links up, and the head's state root equals the root of
//! the state the node serves. Uses the real `node-bench serve` process.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coldchain_node::testing::{http, probe_address, probe_payload, PROBE_FAMILY, PROBE_VERSION};
use coldchain_processors::signing::{
    batch_list_bytes, sign_batch, sign_transaction, Signer, TransactionSpec,
};
use serde_json::Value;

fn spawn_node(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-bench"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("READY ")
        .expect("node prints READY <url> <endpoint>")
        .split_whitespace()
        .next()
        .expect("READY line names the REST URL")
        .to_string();
    (child, url)
}

/// (batch id, [(name, value)])
type Sent = (String, Vec<(String, Vec<u8>)>);

fn probe_batch(signer: &Signer, round: u64) -> (Vec<u8>, Sent) {
    let mut written = Vec::new();
    let txns = (0..20)
        .map(|k| {
            let name = format!("crash-{}-{round}-{k}", &signer.public_key()[..8]);
            let value = format!("value-{round}-{k}").into_bytes();
            written.push((name.clone(), value.clone()));
            sign_transaction(
                TransactionSpec {
                    family_name: PROBE_FAMILY.into(),
                    family_version: PROBE_VERSION.into(),
                    inputs: vec![probe_address(&name)],
                    outputs: vec![probe_address(&name)],
                    dependencies: vec![],
                    payload: probe_payload(&name, &value),
                },
                signer,
                signer.public_key(),
            )
            .unwrap()
        })
        .collect();
    let batch = sign_batch(txns, signer).unwrap();
    let id = batch.get_header_signature().to_string();
    (batch_list_bytes(vec![batch]).unwrap(), (id, written))
}

/// Submits batches until `stop`, recording those the node reported COMMITTED.
fn load(url: String, stop: Arc<AtomicBool>, committed: Arc<Mutex<Vec<Sent>>>) {
    let signer = Signer::generate();
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let (body, sent) = probe_batch(&signer, round);
        round += 1;
        match http::post_batches(&url, &body) {
            Ok(reply) if reply.status == 202 => {}
            _ => continue,
        }
        let status = http::get(&url, &format!("/batch_statuses?id={}&wait=5", sent.0));
        if let Ok(reply) = status {
            if reply.json()["data"][0]["status"] == "COMMITTED" {
                committed.lock().unwrap().push(sent);
            }
        }
    }
}

fn all_pages(url: &str, first: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = first.to_string();
    loop {
        let page = http::get(url, &path).unwrap().json();
        items.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["paging"]["next"].as_str() {
            Some(next) => path = format!("/{}", next.splitn(4, '/').nth(3).unwrap()),
            None => return items,
        }
    }
}

fn check_consistent(url: &str, committed: &[Sent]) {
    for (id, written) in committed {
        let status = http::get(url, &format!("/batch_statuses?id={id}"))
            .unwrap()
            .json();
        assert_eq!(
            status["data"][0]["status"], "COMMITTED",
            "batch {id} was reported COMMITTED before the crash"
        );
        for (name, value) in written {
            let state = http::get(url, &format!("/state/{}", probe_address(name)))
                .unwrap()
                .json();
            assert_eq!(state["data"], coldchain_node::rest::json::b64(value));
        }
    }
    let blocks = all_pages(url, "/blocks?limit=1000");
    for pair in blocks.windows(2) {
        assert_eq!(
            pair[0]["header"]["previous_block_id"],
            pair[1]["header_signature"]
        );
    }
    assert_eq!(blocks.last().unwrap()["header"]["block_num"], "0");
    let leaves: Vec<(String, Vec<u8>)> = all_pages(url, "/state?limit=1000")
        .iter()
        .map(|leaf| {
            use base64::Engine;
            let value = base64::engine::general_purpose::STANDARD
                .decode(leaf["data"].as_str().unwrap())
                .unwrap();
            (leaf["address"].as_str().unwrap().to_string(), value)
        })
        .collect();
    let root = coldchain_state::MerkleRadix::from_leaves(leaves)
        .unwrap()
        .root();
    assert_eq!(blocks[0]["header"]["state_root_hash"], root.as_str());
}

#[test]
fn kill_9_under_load_loses_nothing_reported_committed() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    for cycle in 0..3u64 {
        let (mut child, url) = spawn_node(dir.path());
        check_consistent(&url, &committed.lock().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let (url, stop, committed) = (url.clone(), stop.clone(), committed.clone());
                std::thread::spawn(move || load(url, stop, committed))
            })
            .collect();
        let before = committed.lock().unwrap().len();
        let started = Instant::now();
        // Kill at a different moment each cycle, once some batches committed.
        while committed.lock().unwrap().len() < before + 5
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(37 * (cycle + 1)));
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        assert!(
            committed.lock().unwrap().len() > before,
            "cycle {cycle}: nothing committed under load"
        );
    }
    let (mut child, url) = spawn_node(dir.path());
    check_consistent(&url, &committed.lock().unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
}
