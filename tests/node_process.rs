//! `coldchain node` as a real process on free ports: genesis settings reach
//! the settings addresses, the coldchain families run in-process (an admin's
//! transaction commits, a stranger's is INVALID with the family's message),
//! bad input gets 4xx error JSON, SIGTERM stops it cleanly, and kill -9 then
//! restart keeps everything that was committed.
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coldchain_node::testing::http;
use coldchain_processors::addressing::{setting_address, RecordKind, ADMINS_SETTING};
use coldchain_processors::messages::coldchain::{
    CreateOrganization, RegistryPayload, RegistryPayload_oneof_action, Role,
};
use coldchain_processors::registry::spec::transaction_spec;
use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction, Signer};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(data_dir: &Path, genesis: &Path) -> Running {
    let rest_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_coldchain"))
        .arg("node")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--genesis")
        .arg(genesis)
        .arg("--rest-api")
        .arg(format!("127.0.0.1:{rest_port}"))
        .arg("--component")
        .arg(format!("tcp://127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .spawn()
        .expect("coldchain binary runs");
    let url = format!("http://127.0.0.1:{rest_port}");
    let started = Instant::now();
    while http::get(&url, "/blocks?limit=1").map(|r| r.status).ok() != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node did not start serving"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Running { child, url }
}

fn create_org(signer: &Signer, org_id: &str) -> (String, Vec<u8>) {
    let mut action = CreateOrganization::new();
    action.set_org_id(org_id.to_string());
    action.set_name(format!("{org_id} Ltd"));
    action.roles.push(Role::MANUFACTURER);
    let mut payload = RegistryPayload::new();
    payload.set_timestamp_s(1_700_000_000);
    payload.action = Some(RegistryPayload_oneof_action::create_organization(action));
    let spec = transaction_spec(&payload).unwrap();
    let txn = sign_transaction(spec, signer, signer.public_key()).unwrap();
    let batch = sign_batch(vec![txn], signer).unwrap();
    (
        batch.get_header_signature().to_string(),
        batch_list_bytes(vec![batch]).unwrap(),
    )
}

fn submit_and_wait(url: &str, body: &[u8], id: &str) -> Value {
    assert_eq!(http::post_batches(url, body).unwrap().status, 202);
    http::get(url, &format!("/batch_statuses?id={id}&wait=20"))
        .unwrap()
        .json()["data"][0]
        .clone()
}

#[test]
fn coldchain_node_runs_the_families_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Signer::generate();
    let genesis = dir.path().join("genesis.toml");
    let mut file = std::fs::File::create(&genesis).unwrap();
    writeln!(
        file,
        "[settings]\n\"{ADMINS_SETTING}\" = \"{}\"",
        admin.public_key()
    )
    .unwrap();
    let data_dir = dir.path().join("data");

    let node = start_node(&data_dir, &genesis);
    let admins = http::get(
        &node.url,
        &format!("/state/{}", setting_address(ADMINS_SETTING)),
    )
    .unwrap();
    assert_eq!(admins.status, 200);

    let (id, body) = create_org(&admin, "pharma-1");
    let status = submit_and_wait(&node.url, &body, &id);
    assert_eq!(status["status"], "COMMITTED", "{status}");
    let org = http::get(
        &node.url,
        &format!("/state/{}", RecordKind::Organization.address("pharma-1")),
    )
    .unwrap();
    assert_eq!(org.status, 200);

    let stranger = Signer::generate();
    let (id, body) = create_org(&stranger, "rogue-1");
    let status = submit_and_wait(&node.url, &body, &id);
    assert_eq!(status["status"], "INVALID");
    assert!(!status["invalid_transactions"][0]["message"]
        .as_str()
        .unwrap()
        .is_empty());

    let garbage = http::post_batches(&node.url, b"definitely not a BatchList").unwrap();
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["error"]["code"], 35);
    assert_eq!(http::get(&node.url, "/no/such/path").unwrap().status, 404);

    let head_before = http::get(&node.url, "/blocks?limit=1").unwrap().json()["head"].clone();
    let mut node = node;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    drop(node);

    let node = start_node(&data_dir, &genesis);
    let head_after = http::get(&node.url, "/blocks?limit=1").unwrap().json()["head"].clone();
    assert_eq!(head_before, head_after);
    let org = http::get(
        &node.url,
        &format!("/state/{}", RecordKind::Organization.address("pharma-1")),
    )
    .unwrap();
    assert_eq!(org.status, 200);

    // SIGTERM: clean exit with status 0.
    let mut node = node;
    Command::new("kill")
        .arg("-TERM")
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            assert!(status.success(), "node exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "node ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every `data` entry of a paged list, following `paging.next` as a Sawtooth
/// client does (so paging of `/state`, `/batches` and `/transactions` is
/// exercised with small pages).
fn all_pages(url: &str, first_path: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = first_path.to_string();
    for _ in 0..10_000 {
        let page = http::get(url, &path).unwrap().json();
        let data = page["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 7, "a page holds at most its limit: {path}");
        entries.extend(data);
        match page["paging"]["next"].as_str() {
            Some(next) => {
                path = next
                    .strip_prefix(url)
                    .unwrap_or_else(|| panic!("paging.next {next} is on this node {url}"))
                    .to_string();
            }
            None => return entries,
        }
    }
    panic!("paging of {first_path} never ended");
}

/// Kill -9 while clients are submitting: after the restart, every batch a
/// client saw COMMITTED is still committed, its organisation is in state, and
/// state holds exactly the organisations the chain's transactions created
/// (nothing half-applied); the node then keeps committing. Three crashes.
#[test]
fn kill_9_under_load_loses_nothing_committed_and_leaves_chain_and_state_agreeing() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let admin = Signer::generate();
    let genesis = dir.path().join("genesis.toml");
    std::fs::write(
        &genesis,
        format!(
            "[settings]\n\"{ADMINS_SETTING}\" = \"{}\"\n",
            admin.public_key()
        ),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let committed: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let next_org = Arc::new(AtomicUsize::new(0));
    let org_prefix = &RecordKind::Organization.address("x")[..8];

    for crash in 0..3 {
        let node = start_node(&data_dir, &genesis);
        let running = Arc::new(AtomicBool::new(true));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (url, admin) = (node.url.clone(), admin.clone());
                let (committed, next_org, running) =
                    (committed.clone(), next_org.clone(), running.clone());
                std::thread::spawn(move || {
                    while running.load(Ordering::Relaxed) {
                        let org = format!("org-{}", next_org.fetch_add(1, Ordering::Relaxed));
                        let (id, body) = create_org(&admin, &org);
                        if !matches!(http::post_batches(&url, &body), Ok(r) if r.status == 202) {
                            return;
                        }
                        let Ok(reply) =
                            http::get(&url, &format!("/batch_statuses?id={id}&wait=10"))
                        else {
                            return;
                        };
                        if reply.json()["data"][0]["status"] == "COMMITTED" {
                            committed.lock().unwrap().push((id, org));
                        }
                    }
                })
            })
            .collect();
        // Let load build up, then crash at a different moment each time.
        std::thread::sleep(Duration::from_millis(700 + 400 * crash));
        let mut node = node;
        node.child.kill().unwrap();
        node.child.wait().unwrap();
        running.store(false, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        drop(node);
    }

    let node = start_node(&data_dir, &genesis);
    let committed = committed.lock().unwrap().clone();
    assert!(
        committed.len() > 20,
        "the clients committed under load: {}",
        committed.len()
    );
    for (id, org) in &committed {
        let status = http::get(&node.url, &format!("/batch_statuses?id={id}"))
            .unwrap()
            .json();
        assert_eq!(
            status["data"][0]["status"], "COMMITTED",
            "batch of {org}: {status}"
        );
        let record = http::get(
            &node.url,
            &format!("/state/{}", RecordKind::Organization.address(org)),
        )
        .unwrap();
        assert_eq!(record.status, 200, "{org} reported COMMITTED is in state");
    }
    // Chain and state agree: one organisation in state per CreateOrganization
    // transaction on the chain (the registry family's only writes here).
    let in_state = all_pages(&node.url, &format!("/state?address={org_prefix}&limit=7"));
    let registry_transactions = all_pages(&node.url, "/transactions?limit=7")
        .into_iter()
        .filter(|t| t["header"]["family_name"] == "coldchain-registry")
        .count();
    assert_eq!(in_state.len(), registry_transactions);
    assert!(in_state.len() >= committed.len());
    let batches = all_pages(&node.url, "/batches?limit=7");
    assert!(batches.len() >= committed.len());
    // The head block's state root is the one the state is served at.
    let head = http::get(&node.url, "/blocks?limit=1").unwrap().json();
    let state = http::get(&node.url, &format!("/state?address={org_prefix}&limit=1"))
        .unwrap()
        .json();
    assert_eq!(head["head"], state["head"]);
    // And it keeps working.
    let (id, body) = create_org(&admin, "after-the-crashes");
    let status = submit_and_wait(&node.url, &body, &id);
    assert_eq!(status["status"], "COMMITTED", "{status}");
}
