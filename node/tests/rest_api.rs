//! The node through its REST API, in-process on a free port, with the probe
//! family: commits, invalid transactions with the TP's message, declared
//! inputs enforced, bad input answered with Sawtooth-style 4xx errors,
//! paging, and restart on the same data directory.
use std::sync::Arc;
use std::time::Duration;

use coldchain_node::genesis::GenesisSettings;
use coldchain_node::testing::{
    http, probe_address, probe_payload, ProbeHandler, PROBE_FAMILY, PROBE_VERSION,
};
use coldchain_node::{Node, NodeConfig, NodeHandle};
use coldchain_processors::signing::{
    batch_list_bytes, sign_batch, sign_transaction, Signer, TransactionSpec,
};
use sawtooth_sdk::messages::batch::Batch;
use serde_json::Value;

fn start(dir: &std::path::Path) -> NodeHandle {
    let mut config = NodeConfig::new(dir);
    config.rest_api = "127.0.0.1:0".parse().unwrap();
    config.component = "tcp://127.0.0.1:*".to_string();
    config.handlers = vec![Arc::new(ProbeHandler)];
    config.genesis = GenesisSettings::parse(
        &format!(
            "[settings]\n\"coldchain.admins\" = \"{}\"\n",
            Signer::generate().public_key()
        ),
        "test",
    )
    .unwrap();
    Node::start(config).unwrap()
}

fn probe_batch(signer: &Signer, names: &[(&str, &[u8])], extra_inputs: &[String]) -> Batch {
    let txns = names
        .iter()
        .map(|(name, value)| {
            let mut inputs = vec![probe_address(name)];
            inputs.extend(extra_inputs.iter().cloned());
            sign_transaction(
                TransactionSpec {
                    family_name: PROBE_FAMILY.into(),
                    family_version: PROBE_VERSION.into(),
                    inputs,
                    outputs: vec![probe_address(name)],
                    dependencies: vec![],
                    payload: probe_payload(name, value),
                },
                signer,
                signer.public_key(),
            )
            .unwrap()
        })
        .collect();
    sign_batch(txns, signer).unwrap()
}

fn submit(node: &NodeHandle, batches: Vec<Batch>) -> http::Reply {
    http::post_batches(&node.rest_url(), &batch_list_bytes(batches).unwrap()).unwrap()
}

fn status(node: &NodeHandle, id: &str) -> Value {
    let reply = http::get(
        &node.rest_url(),
        &format!("/batch_statuses?id={id}&wait=10"),
    )
    .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["data"][0].clone()
}

fn error_code(reply: &http::Reply) -> i64 {
    reply.json()["error"]["code"].as_i64().unwrap_or(-1)
}

#[test]
fn committed_batch_is_visible_in_state_blocks_and_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let batch = probe_batch(&signer, &[("alpha", b"one"), ("beta", b"two")], &[]);
    let id = batch.get_header_signature().to_string();
    let txn_id = batch.get_transactions()[0]
        .get_header_signature()
        .to_string();
    let reply = submit(&node, vec![batch]);
    assert_eq!(reply.status, 202);
    assert!(reply.json()["link"]
        .as_str()
        .unwrap()
        .contains(&format!("/batch_statuses?id={id}")));
    assert_eq!(status(&node, &id)["status"], "COMMITTED");

    let state = http::get(
        &node.rest_url(),
        &format!("/state/{}", probe_address("alpha")),
    )
    .unwrap();
    assert_eq!(state.status, 200);
    assert_eq!(state.json()["data"], "b25l"); // base64("one")

    let blocks = http::get(&node.rest_url(), "/blocks").unwrap().json();
    assert_eq!(blocks["data"][0]["header"]["block_num"], "1");
    assert_eq!(blocks["data"][0]["header"]["batch_ids"][0], id.as_str());
    assert_eq!(
        blocks["data"][1]["header"]["previous_block_id"],
        "0000000000000000"
    );
    assert_eq!(blocks["head"], blocks["data"][0]["header_signature"]);

    let receipts = http::get(&node.rest_url(), &format!("/receipts?id={txn_id}"))
        .unwrap()
        .json();
    assert_eq!(
        receipts["data"][0]["state_changes"][0]["address"],
        probe_address("alpha")
    );
    assert_eq!(
        receipts["data"][0]["events"][0]["event_type"],
        "probe/written"
    );

    let txn = http::get(&node.rest_url(), &format!("/transactions/{txn_id}"))
        .unwrap()
        .json();
    assert_eq!(txn["data"]["header"]["family_name"], PROBE_FAMILY);
    let fetched = http::get(&node.rest_url(), &format!("/batches/{id}"))
        .unwrap()
        .json();
    assert_eq!(fetched["data"]["header_signature"], id.as_str());
    node.shutdown();
}

#[test]
fn invalid_transaction_reports_the_processor_message_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let batch = probe_batch(
        &signer,
        &[("gamma", b"x"), ("invalid:lot L1 is recalled", b"")],
        &[],
    );
    let id = batch.get_header_signature().to_string();
    let bad_txn = batch.get_transactions()[1]
        .get_header_signature()
        .to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    let s = status(&node, &id);
    assert_eq!(s["status"], "INVALID");
    assert_eq!(s["invalid_transactions"][0]["id"], bad_txn.as_str());
    assert_eq!(
        s["invalid_transactions"][0]["message"],
        "lot L1 is recalled"
    );
    // All or nothing: the valid first transaction was not applied either.
    let state = http::get(
        &node.rest_url(),
        &format!("/state/{}", probe_address("gamma")),
    )
    .unwrap();
    assert_eq!(state.status, 404);
    assert_eq!(error_code(&state), 75);
    node.shutdown();
}

#[test]
fn reading_outside_declared_inputs_makes_the_batch_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let other = probe_address("someone-else");
    let batch = probe_batch(&signer, &[(&format!("read:{other}"), b"")], &[]);
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    let s = status(&node, &id);
    assert_eq!(s["status"], "INVALID");
    assert!(s["invalid_transactions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("declared inputs"));

    // Declared as an input by prefix, the same read is allowed.
    let batch = probe_batch(
        &signer,
        &[(&format!("read:{other}"), b"")],
        &[other[..10].to_string()],
    );
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    assert_eq!(status(&node, &id)["status"], "COMMITTED");
    node.shutdown();
}

#[test]
fn panicking_handler_ends_invalid_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let batch = probe_batch(&signer, &[("panic", b"")], &[]);
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    let s = status(&node, &id);
    assert_eq!(s["status"], "INVALID");
    assert!(s["invalid_transactions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("panicked"));
    let batch = probe_batch(&signer, &[("after-panic", b"ok")], &[]);
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    assert_eq!(status(&node, &id)["status"], "COMMITTED");
    node.shutdown();
}

#[test]
fn bad_submissions_get_sawtooth_error_json_with_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let url = node.rest_url();
    let empty = http::post_batches(&url, &[]).unwrap();
    assert_eq!((empty.status, error_code(&empty)), (400, 34));
    let garbage = http::post_batches(&url, b"\xff\xff\xff not a protobuf").unwrap();
    assert_eq!((garbage.status, error_code(&garbage)), (400, 35));
    let wrong_type =
        http::request(&url, "POST", "/batches", Some("application/json"), b"[]").unwrap();
    assert_eq!((wrong_type.status, error_code(&wrong_type)), (400, 42));

    let signer = Signer::generate();
    let mut tampered = probe_batch(&signer, &[("delta", b"1")], &[]);
    tampered.mut_transactions()[0].set_payload(b"delta\n2".to_vec());
    let reply = submit(&node, vec![tampered]);
    assert_eq!((reply.status, error_code(&reply)), (400, 30));
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("payload_sha512"));

    let mut forged = probe_batch(&signer, &[("epsilon", b"1")], &[]);
    let other = probe_batch(&Signer::generate(), &[("epsilon", b"1")], &[]);
    forged.set_header_signature(other.get_header_signature().to_string());
    let reply = submit(&node, vec![forged]);
    assert_eq!((reply.status, error_code(&reply)), (400, 30));

    let foreign_batcher = {
        let txn = sign_transaction(
            TransactionSpec {
                family_name: PROBE_FAMILY.into(),
                family_version: PROBE_VERSION.into(),
                inputs: vec![probe_address("zeta")],
                outputs: vec![probe_address("zeta")],
                dependencies: vec![],
                payload: probe_payload("zeta", b"1"),
            },
            &signer,
            Signer::generate().public_key(),
        )
        .unwrap();
        sign_batch(vec![txn], &signer).unwrap()
    };
    let reply = submit(&node, vec![foreign_batcher]);
    assert_eq!((reply.status, error_code(&reply)), (400, 30));

    let unknown_family = {
        let txn = sign_transaction(
            TransactionSpec {
                family_name: "no-such-family".into(),
                family_version: "1.0".into(),
                inputs: vec![],
                outputs: vec![],
                dependencies: vec![],
                payload: vec![1],
            },
            &signer,
            signer.public_key(),
        )
        .unwrap();
        sign_batch(vec![txn], &signer).unwrap()
    };
    let reply = submit(&node, vec![unknown_family]);
    assert_eq!((reply.status, error_code(&reply)), (400, 30));

    let huge = vec![0u8; 11 * 1024 * 1024];
    let reply = http::post_batches(&url, &huge).unwrap();
    assert_eq!(reply.status, 413);

    for (path, status, code) in [
        ("/nowhere", 404, 404),
        // As Sawtooth: a limit that is not a positive integer is code 53;
        // one above 1 000 is clamped (see the side-by-side test in
        // tests/real_sawtooth.rs).
        ("/blocks?limit=0", 400, 53),
        ("/blocks?limit=abc", 400, 53),
        ("/blocks?start=nowhere", 400, 54),
        ("/blocks/not-an-id", 400, 60),
        ("/state/xyz", 400, 62),
        ("/state?address=ZZ", 400, 62),
        ("/batch_statuses", 400, 66),
        ("/batch_statuses?id=a", 400, 60),
        (
            &format!("/batch_statuses?id={}&wait=soon", "0".repeat(128)),
            400,
            67,
        ),
        ("/receipts", 400, 83),
        (&format!("/blocks/{}", "0".repeat(128)), 404, 70),
        (&format!("/batches/{}", "0".repeat(128)), 404, 71),
        (&format!("/transactions/{}", "0".repeat(128)), 404, 72),
        (&format!("/receipts?id={}", "0".repeat(128)), 404, 80),
        (&format!("/blocks?head={}", "0".repeat(128)), 404, 50),
    ] {
        let reply = http::get(&url, path).unwrap();
        assert_eq!(
            (reply.status, error_code(&reply)),
            (status, code),
            "GET {path}"
        );
    }
    let reply = http::request(&url, "DELETE", "/blocks", None, &[]).unwrap();
    assert_eq!(reply.status, 405);
    // Still serving after all that.
    assert_eq!(http::get(&url, "/blocks").unwrap().status, 200);
    node.shutdown();
}

#[test]
fn duplicate_transactions_are_refused_and_resubmission_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let batch = probe_batch(&signer, &[("eta", b"1")], &[]);
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch.clone()]).status, 202);
    assert_eq!(status(&node, &id)["status"], "COMMITTED");
    assert_eq!(submit(&node, vec![batch.clone()]).status, 202);
    assert_eq!(status(&node, &id)["status"], "COMMITTED");

    // The same transaction in a different batch is a duplicate.
    let fresh = probe_batch(&signer, &[("iota", b"1")], &[]);
    let mut txns = batch.get_transactions().to_vec();
    txns.extend(fresh.get_transactions().iter().cloned());
    let rebatched = sign_batch(txns, &signer).unwrap();
    let reply = submit(&node, vec![rebatched]);
    assert_eq!((reply.status, error_code(&reply)), (400, 30));
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("duplicate"));
    let unknown = status(&node, &"1".repeat(128));
    assert_eq!(unknown["status"], "UNKNOWN");
    node.shutdown();
}

#[test]
fn genesis_settings_are_readable_where_the_settings_family_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let address = coldchain_processors::addressing::setting_address("coldchain.admins");
    let reply = http::get(&node.rest_url(), &format!("/state/{address}")).unwrap();
    assert_eq!(reply.status, 200);
    let listing = http::get(&node.rest_url(), "/state?address=000000")
        .unwrap()
        .json();
    assert_eq!(listing["data"][0]["address"], address.as_str());
    node.shutdown();
}

#[test]
fn block_listing_pages_with_next_links_until_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    for i in 0..4 {
        let name = format!("page-{i}");
        let batch = probe_batch(&signer, &[(&name, b"v")], &[]);
        let id = batch.get_header_signature().to_string();
        assert_eq!(submit(&node, vec![batch]).status, 202);
        assert_eq!(status(&node, &id)["status"], "COMMITTED");
    }
    let mut path = "/blocks?limit=2".to_string();
    let mut seen = Vec::new();
    loop {
        let page = http::get(&node.rest_url(), &path).unwrap().json();
        for block in page["data"].as_array().unwrap() {
            seen.push(
                block["header"]["block_num"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        match page["paging"]["next"].as_str() {
            Some(next) => path = next.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, vec![4, 3, 2, 1, 0]);
    let txns = http::get(&node.rest_url(), "/transactions?limit=3")
        .unwrap()
        .json();
    assert_eq!(txns["data"].as_array().unwrap().len(), 3);
    assert!(txns["paging"]["next"].is_string());
    node.shutdown();
}

#[test]
fn restart_on_the_same_data_directory_keeps_chain_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let signer = Signer::generate();
    let batch = probe_batch(&signer, &[("theta", b"kept")], &[]);
    let id = batch.get_header_signature().to_string();
    assert_eq!(submit(&node, vec![batch]).status, 202);
    assert_eq!(status(&node, &id)["status"], "COMMITTED");
    let before = http::get(&node.rest_url(), "/blocks?limit=1")
        .unwrap()
        .json();
    let key = node.public_key().to_string();
    node.shutdown();
    std::thread::sleep(Duration::from_millis(50));

    let node = start(dir.path());
    assert_eq!(node.public_key(), key);
    let after = http::get(&node.rest_url(), "/blocks?limit=1")
        .unwrap()
        .json();
    assert_eq!(
        before["data"][0]["header_signature"],
        after["data"][0]["header_signature"]
    );
    assert_eq!(status(&node, &id)["status"], "COMMITTED");
    let state = http::get(
        &node.rest_url(),
        &format!("/state/{}", probe_address("theta")),
    )
    .unwrap();
    assert_eq!(state.json()["data"], "a2VwdA==");
    node.shutdown();
}

#[test]
fn submission_larger_than_the_free_queue_gets_429_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(dir.path());
    config.rest_api = "127.0.0.1:0".parse().unwrap();
    config.component = "tcp://127.0.0.1:*".to_string();
    config.handlers = vec![Arc::new(ProbeHandler)];
    config.queue_capacity = 1;
    let node = Node::start(config).unwrap();
    let signer = Signer::generate();
    let first = probe_batch(&signer, &[("kappa", b"1")], &[]);
    let second = probe_batch(&signer, &[("lambda", b"2")], &[]);
    let first_id = first.get_header_signature().to_string();
    let reply = submit(&node, vec![first, second]);
    assert_eq!((reply.status, error_code(&reply)), (429, 31));
    assert_eq!(status(&node, &first_id)["status"], "UNKNOWN");
    node.shutdown();
}

/// The shapes Sawtooth 1.2.6's REST API gives that clients read (checked
/// against a real validator in tests/real_sawtooth.rs): receipts keyed by
/// `id` and without empty strings, POST answers without `link`, `paging`
/// with `limit` and `start` as given (`null` when absent), block positions
/// as `0x` + 16 hex digits, `limit` above 1 000 clamped, `id` filters on
/// lists, and `/status` and `/peers`.
#[test]
fn answers_have_sawtooth_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path());
    let url = node.rest_url();
    let signer = Signer::generate();
    let mut txn_ids = Vec::new();
    for i in 0..3 {
        let name = format!("shape-{i}");
        let batch = probe_batch(&signer, &[(&name, b"v")], &[]);
        txn_ids.push(
            batch.get_transactions()[0]
                .get_header_signature()
                .to_string(),
        );
        let id = batch.get_header_signature().to_string();
        assert_eq!(submit(&node, vec![batch]).status, 202);
        assert_eq!(status(&node, &id)["status"], "COMMITTED");
    }

    let body = serde_json::to_vec(&txn_ids[..1]).unwrap();
    let posted = http::request(&url, "POST", "/receipts", Some("application/json"), &body)
        .unwrap()
        .json();
    assert!(posted.get("link").is_none(), "{posted}");
    let receipt = &posted["data"][0];
    assert_eq!(receipt["id"], txn_ids[0].as_str(), "{posted}");
    assert!(receipt.get("transaction_id").is_none(), "{posted}");
    assert_eq!(receipt["state_changes"][0]["type"], "SET");
    let fetched = http::get(&url, &format!("/receipts?id={}", txn_ids[0]))
        .unwrap()
        .json();
    assert!(fetched["link"].is_string(), "{fetched}");

    let statuses = http::request(
        &url,
        "POST",
        "/batch_statuses",
        Some("application/json"),
        format!("[\"{}\"]", "0".repeat(128)).as_bytes(),
    )
    .unwrap();
    assert_eq!(
        statuses.status,
        200,
        "{}",
        String::from_utf8_lossy(&statuses.body)
    );
    assert!(statuses.json().get("link").is_none());

    let first = http::get(&url, "/blocks").unwrap().json();
    assert_eq!(first["paging"]["limit"], Value::Null, "{}", first["paging"]);
    assert_eq!(first["paging"]["start"], Value::Null);
    let page = http::get(&url, "/blocks?limit=2").unwrap().json();
    assert_eq!(page["paging"]["limit"], 2);
    assert_eq!(page["paging"]["next_position"], "0x0000000000000001");
    assert!(page["link"]
        .as_str()
        .unwrap()
        .contains("start=0x0000000000000003&limit=2"));
    let next = http::get(&url, "/blocks?limit=2&start=0x0000000000000001")
        .unwrap()
        .json();
    assert_eq!(next["data"].as_array().unwrap().len(), 2);
    assert_eq!(next["paging"]["start"], "0x0000000000000001");
    assert!(next["paging"].get("next").is_none());
    let clamped = http::get(&url, "/blocks?limit=5000").unwrap();
    assert_eq!(clamped.status, 200);
    assert_eq!(clamped.json()["paging"]["limit"], 5000);

    let filtered = http::get(
        &url,
        &format!("/transactions?id={},{}", txn_ids[2], txn_ids[0]),
    )
    .unwrap()
    .json();
    let ids: Vec<&str> = filtered["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["header_signature"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [txn_ids[2].as_str(), txn_ids[0].as_str()]);

    let status_reply = http::get(&url, "/status").unwrap();
    assert_eq!(status_reply.status, 200);
    assert_eq!(status_reply.json()["data"]["peers"], serde_json::json!([]));
    assert_eq!(status_reply.json()["data"]["endpoint"], "");
    let peers = http::get(&url, "/peers").unwrap();
    assert_eq!(peers.status, 200);
    assert_eq!(peers.json()["data"], serde_json::json!([]));
    node.shutdown();
}
