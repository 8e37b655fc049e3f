//! End to end through the component endpoint of a real `coldchain node`
//! process: a family's external TP process (`coldchain tp`) executes the
//! transactions the CLI submits over REST, and an event subscriber built on
//! the official Sawtooth SDK's ZeroMQ connection follows the chain and
//! catches up after a disconnect.
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::client_event::{
    ClientEventsSubscribeRequest, ClientEventsSubscribeResponse,
    ClientEventsSubscribeResponse_Status,
};
use sawtooth_sdk::messages::events::{EventList, EventSubscription};
use sawtooth_sdk::messages::transaction_receipt::StateChangeList;
use sawtooth_sdk::messages::validator::Message_MessageType as Type;
use sawtooth_sdk::messaging::stream::{MessageConnection, MessageReceiver, MessageSender};
use sawtooth_sdk::messaging::zmq_stream::{ZmqMessageConnection, ZmqMessageSender};

const BIN: &str = env!("CARGO_BIN_EXE_coldchain");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A child process killed (SIGKILL) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct NodeProcess {
    _child: Running,
    url: String,
    component: String,
}

fn keygen(dir: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["keygen", name, "--json", "--key-dir"])
        .arg(dir)
        .output()
        .expect("run coldchain keygen");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("keygen --json prints JSON");
    json["public_key"].as_str().expect("public_key").to_string()
}

/// Starts a node whose families run only in external TPs.
fn start_node_without_in_process_families(dir: &Path, admin: &str) -> NodeProcess {
    let genesis = dir.join("genesis.toml");
    std::fs::write(
        &genesis,
        format!("[settings]\n\"coldchain.admins\" = \"{admin}\"\n"),
    )
    .expect("write genesis");
    let rest = free_port();
    let component = format!("tcp://127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .args(["node", "--no-in-process-families", "--data-dir"])
        .arg(dir.join("node"))
        .args([
            "--rest-api",
            &format!("127.0.0.1:{rest}"),
            "--component",
            &component,
            "--genesis",
        ])
        .arg(&genesis)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coldchain node");
    let child = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", rest)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the node did not open its REST API"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    NodeProcess {
        _child: child,
        url: format!("http://127.0.0.1:{rest}"),
        component,
    }
}

fn start_tp(component: &str, family: &str) -> Running {
    let child = Command::new(BIN)
        .args(["tp", family, "--connect", component])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coldchain tp");
    Running(child)
}

/// Runs `coldchain org create` and returns whether the ledger committed it.
fn create_org(node: &NodeProcess, keys: &Path, id: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "org",
            "create",
            "--id",
            id,
            "--name",
            id,
            "--role",
            "manufacturer",
            "--url",
            &node.url,
            "--key",
        ])
        .arg(keys.join("admin.priv"))
        .output()
        .expect("run coldchain org create")
}

fn create_org_committed(node: &NodeProcess, keys: &Path, id: &str) {
    // The TP registers asynchronously; retry briefly until it executes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = create_org(node, keys, id);
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`coldchain org create --id {id}` did not commit through the external TP: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An event subscriber on the SDK's own ZeroMQ client, as a Sawtooth
/// indexer would be written.
struct Subscriber {
    sender: ZmqMessageSender,
    receiver: MessageReceiver,
}

impl Subscriber {
    fn subscribe(component: &str, last_known: &[String]) -> Subscriber {
        let (sender, receiver) = ZmqMessageConnection::new(component).create();
        let subscriptions = ["sawtooth/block-commit", "sawtooth/state-delta"].map(|t| {
            let mut s = EventSubscription::new();
            s.set_event_type(t.to_string());
            s
        });
        let mut request = ClientEventsSubscribeRequest::new();
        request.set_subscriptions(RepeatedField::from_vec(subscriptions.to_vec()));
        request.set_last_known_block_ids(RepeatedField::from_vec(last_known.to_vec()));
        let bytes = request.write_to_bytes().expect("encode subscribe request");
        let mut reply = sender
            .send(Type::CLIENT_EVENTS_SUBSCRIBE_REQUEST, "subscribe-1", &bytes)
            .expect("send subscribe request");
        let reply = reply
            .get_timeout(Duration::from_secs(10))
            .expect("subscribe response");
        let reply = ClientEventsSubscribeResponse::parse_from_bytes(reply.get_content())
            .expect("decode response");
        assert_eq!(
            reply.get_status(),
            ClientEventsSubscribeResponse_Status::OK,
            "{}",
            reply.get_response_message()
        );
        Subscriber { sender, receiver }
    }

    /// (block_num, block_id, state changes) per block received until
    /// `quiet` passes without events.
    fn blocks(&self, quiet: Duration) -> Vec<(u64, String, usize)> {
        let mut blocks: Vec<(u64, String, usize)> = Vec::new();
        while let Ok(Ok(message)) = self.receiver.recv_timeout(quiet) {
            if message.get_message_type() != Type::CLIENT_EVENTS {
                continue;
            }
            let list =
                EventList::parse_from_bytes(message.get_content()).expect("EventList decodes");
            for event in list.get_events() {
                let attr = |k: &str| {
                    event
                        .get_attributes()
                        .iter()
                        .find(|a| a.get_key() == k)
                        .map(|a| a.get_value().to_string())
                };
                match event.get_event_type() {
                    "sawtooth/block-commit" => {
                        let num = attr("block_num")
                            .and_then(|n| n.parse().ok())
                            .expect("block_num");
                        blocks.push((num, attr("block_id").expect("block_id"), 0));
                    }
                    "sawtooth/state-delta" => {
                        let changes = StateChangeList::parse_from_bytes(event.get_data())
                            .expect("StateChangeList");
                        if let Some(last) = blocks.last_mut() {
                            last.2 += changes.get_state_changes().len();
                        }
                    }
                    _ => {}
                }
            }
        }
        blocks
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.sender.close();
    }
}

#[test]
fn an_external_family_tp_executes_and_a_subscriber_catches_up_after_a_disconnect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let node = start_node_without_in_process_families(dir.path(), &admin);

    // With no in-process families, the registry family runs only in its TP.
    let _tp = start_tp(&node.component, "registry");
    let first = Subscriber::subscribe(&node.component, &[]);
    create_org_committed(&node, &keys, "pharmaco");
    let seen = first.blocks(Duration::from_millis(1500));
    let with_changes: Vec<_> = seen.iter().filter(|b| b.2 > 0).collect();
    assert!(
        !with_changes.is_empty(),
        "a committed org writes state, seen as a state-delta: {seen:?}"
    );
    let (last_num, last_id, _) = seen.last().cloned().expect("block-commit events arrive");
    drop(first);

    // Two more commits while nobody listens, then catch up from the last block seen.
    create_org_committed(&node, &keys, "coldtrans");
    create_org_committed(&node, &keys, "citypharm");
    let second = Subscriber::subscribe(&node.component, &["0123-unknown".to_string(), last_id]);
    let caught_up = second.blocks(Duration::from_millis(1500));
    let nums: Vec<u64> = caught_up.iter().map(|b| b.0).collect();
    assert!(nums.len() >= 2, "the two missed commits arrive: {nums:?}");
    let expected: Vec<u64> = (last_num + 1..last_num + 1 + nums.len() as u64).collect();
    assert_eq!(
        nums, expected,
        "missed blocks arrive once each, in order, right after the last one seen"
    );

    // Then live again.
    create_org_committed(&node, &keys, "cityhosp");
    let live = second.blocks(Duration::from_millis(1500));
    assert_eq!(
        live.first().map(|b| b.0),
        nums.last().map(|n| n + 1),
        "live blocks follow the caught-up ones"
    );
}

#[test]
fn without_a_tp_the_family_does_not_execute_until_one_connects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let node = start_node_without_in_process_families(dir.path(), &admin);
    let tp = start_tp(&node.component, "registry");
    create_org_committed(&node, &keys, "pharmaco");
    drop(tp); // kill -9: the node must stop routing to it
    let out = create_org(&node, &keys, "coldtrans");
    assert!(
        !out.status.success(),
        "with the only TP dead, nothing may execute the registry family"
    );
    let _tp = start_tp(&node.component, "registry");
    create_org_committed(&node, &keys, "coldtrans");
}
