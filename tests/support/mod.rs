//! Shared by the end-to-end tests that drive `coldchain` as a process: start
//! a real node (optionally with the families as external TP processes), make
//! keys, run participant commands, submit signed readings.
#![allow(dead_code)]

pub mod sawtooth;
pub mod scenario;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use coldchain_processors::messages::coldchain::{Reading, RecordReadings};
use coldchain_processors::sensor::record_readings_spec;
use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction, Signer};

pub const BIN: &str = env!("CARGO_BIN_EXE_coldchain");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Kills and reaps a child process when dropped.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 60 s) until something listens on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `coldchain api` process (killed when dropped).
pub struct ApiProcess {
    pub url: String,
    _process: Reaper,
}

/// Starts `coldchain api` on a free port, following the ledger at `rest` and
/// `component`, with its SQLite index in `dir/index-<name>.db` and its log in
/// `dir/api-<name>.log`; returns once it listens.
pub fn start_api(dir: &Path, name: &str, rest: &str, component: &str) -> ApiProcess {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("api-{name}.log"))).expect("API log");
    let index = format!(
        "sqlite://{}",
        dir.join(format!("index-{name}.db")).display()
    );
    let child = Command::new(BIN)
        .args([
            "api",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--rest-url",
            rest,
        ])
        .args(["--component", component, "--index", &index])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start coldchain api");
    let process = Reaper(child);
    wait_for_port(port);
    ApiProcess {
        url: format!("http://127.0.0.1:{port}"),
        _process: process,
    }
}

/// A running `coldchain node`, and the TP processes when the families run externally.
pub struct NodeProcess {
    children: Vec<Child>,
    pub url: String,
    pub component: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the families run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Families {
    InProcess,
    /// `coldchain node --no-in-process-families` plus one `coldchain tp <family>` process each.
    ExternalProcesses,
}

pub fn start_node(dir: &Path, admin_public_key: &str, families: Families) -> NodeProcess {
    let genesis = dir.join("genesis.toml");
    std::fs::write(
        &genesis,
        format!("[settings]\n\"coldchain.admins\" = \"{admin_public_key}\"\n"),
    )
    .unwrap();
    let rest = free_port();
    let component = format!("tcp://127.0.0.1:{}", free_port());
    let mut node = Command::new(BIN);
    node.args(["node", "--data-dir"])
        .arg(dir.join("node"))
        .args([
            "--rest-api",
            &format!("127.0.0.1:{rest}"),
            "--component",
            &component,
        ])
        .arg("--genesis")
        .arg(&genesis)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if families == Families::ExternalProcesses {
        node.arg("--no-in-process-families");
    }
    let mut children = vec![node.spawn().expect("start coldchain node")];
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", rest)).is_err() {
        assert!(Instant::now() < deadline, "node did not open its REST API");
        std::thread::sleep(Duration::from_millis(100));
    }
    if families == Families::ExternalProcesses {
        for family in ["registry", "custody", "sensor"] {
            children.push(
                Command::new(BIN)
                    .args(["tp", family, "--connect", &component])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start coldchain tp"),
            );
        }
    }
    NodeProcess {
        children,
        url: format!("http://127.0.0.1:{rest}"),
        component,
    }
}

/// Kills the node process of `node` (SIGKILL, as a crash would) and starts
/// it again, with in-process families, on the same data directory, REST
/// address and component endpoint; the other processes (TPs) keep running
/// and must reconnect by themselves.
pub fn restart_node(dir: &Path, mut node: NodeProcess) -> NodeProcess {
    let mut old = node.children.remove(0);
    let _ = old.kill();
    let _ = old.wait();
    let rest = node.url.trim_start_matches("http://").to_string();
    let restarted = Command::new(BIN)
        .args(["node", "--data-dir"])
        .arg(dir.join("node"))
        .args(["--rest-api", &rest, "--component", &node.component])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart coldchain node");
    node.children.insert(0, restarted);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&rest).is_err() {
        assert!(
            Instant::now() < deadline,
            "restarted node did not open its REST API"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    node
}

pub fn keygen(dir: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .args(["keygen", name, "--json", "--key-dir"])
        .arg(dir)
        .output()
        .expect("keygen");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("keygen --json prints JSON");
    json["public_key"].as_str().expect("public_key").to_string()
}

/// Appends the GS1 check digit.
pub fn gln(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// Runs participant commands against one node, signing with named key files.
pub struct Cli {
    pub url: String,
    pub keys: PathBuf,
}

impl Cli {
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--url", &self.url, "--key"])
            .arg(self.keys.join(format!("{key}.priv")))
            .output()
            .expect("run coldchain")
    }

    pub fn ok(&self, key: &str, args: &[&str]) -> String {
        let out = self.run(key, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "`coldchain {}` as {key} failed:\n{stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// As a network admin (key `admin`): creates organisation `org` with
    /// `role`, adds `key`'s public key as its agent with that role and admin,
    /// then, as that agent, registers the site `gln`.
    pub fn onboard(&self, key: &str, public_key: &str, org: &str, role: &str, gln: &str) {
        self.ok(
            "admin",
            &["org", "create", "--id", org, "--name", org, "--role", role],
        );
        self.ok(
            "admin",
            &[
                "org",
                "add-agent",
                "--org",
                org,
                "--public-key",
                public_key,
                "--name",
                key,
                "--role",
                role,
                "--role",
                "admin",
            ],
        );
        self.ok(
            key,
            &[
                "org", "add-site", "--org", org, "--gln", gln, "--name", "main",
            ],
        );
    }

    /// Expects a refusal by the ledger whose message contains `needle` (any case).
    pub fn refused(&self, key: &str, args: &[&str], needle: &str) -> String {
        let out = self.run(key, args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "`coldchain {}` as {key} should have been refused",
            args.join(" ")
        );
        assert!(
            stderr.to_lowercase().contains(&needle.to_lowercase()),
            "refusal of `coldchain {}` should mention {needle:?}, got: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.contains("refused by the ledger"),
            "refusal should say the ledger refused: {stderr}"
        );
        stderr
    }
}

/// One reading a second from `start_s`, temperatures in hundredths of °C.
pub fn readings(first_sequence: u64, start_s: u64, temperatures_cdeg: &[i32]) -> Vec<Reading> {
    temperatures_cdeg
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut reading = Reading::new();
            reading.set_sequence(first_sequence + i as u64);
            reading.set_time_s(start_s + i as u64);
            reading.set_temperature_cdeg(*t);
            reading
        })
        .collect()
}

/// Submits one readings transaction signed by `gateway`, as the sensor
/// gateway would, and returns the batch status JSON once it is final.
pub fn submit_readings(
    url: &str,
    gateway: &Signer,
    org: &str,
    device: &str,
    shipment: &str,
    batch: Vec<Reading>,
) -> serde_json::Value {
    use coldchain_node::testing::http;
    let mut payload = RecordReadings::new();
    payload.set_device_id(device.into());
    payload.set_shipment_id(shipment.into());
    payload.set_readings(batch.into());
    let spec = record_readings_spec(&payload, org, gateway.public_key());
    let transaction = sign_transaction(spec, gateway, gateway.public_key()).expect("sign readings");
    let batch = sign_batch(vec![transaction], gateway).expect("sign batch");
    let id = batch.get_header_signature().to_string();
    let body = batch_list_bytes(vec![batch]).expect("encode batch list");
    let reply = http::post_batches(url, &body).expect("POST /batches");
    assert_eq!(reply.status, 202, "POST /batches: {:?}", reply.json());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http::get(url, &format!("/batch_statuses?id={id}&wait=5"))
            .expect("GET /batch_statuses");
        let entry = status.json()["data"][0].clone();
        if entry["status"] != "PENDING" {
            return entry;
        }
        assert!(Instant::now() < deadline, "readings batch stayed PENDING");
    }
}

/// Reads a record from the node's `/state/{address}` (None when absent).
pub fn state<M: protobuf::Message>(url: &str, address: &str) -> Option<M> {
    use coldchain_node::testing::http;
    let reply = http::get(url, &format!("/state/{address}")).expect("GET /state");
    if reply.status == 404 {
        return None;
    }
    let encoded = reply.json()["data"]
        .as_str()
        .expect("state data")
        .to_string();
    Some(M::parse_from_bytes(&base64_decode(&encoded)).expect("a decodable record"))
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// Where [`start_node_external_logged`] and [`restart_node_external`] write
/// the log (stderr) of process `name` (`node-1`, `tp-registry`, …).
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

/// The text of the log of process `name` so far (empty when there is none yet).
pub fn read_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(log_path(dir, name)).unwrap_or_default()
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    let path = log_path(dir, name);
    std::fs::create_dir_all(path.parent().expect("logs directory")).unwrap();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Starts `coldchain node` on `dir/node` with the REST API and component
/// endpoint given, running no families itself (`--no-in-process-families`),
/// logging at info to `log_path(dir, log)`; waits for its REST API.
fn spawn_external_node(dir: &Path, rest: &str, component: &str, log: &str) -> Child {
    let mut node = Command::new(BIN);
    node.args(["node", "--data-dir"])
        .arg(dir.join("node"))
        .args([
            "--rest-api",
            rest,
            "--component",
            component,
            "--no-in-process-families",
        ]);
    let genesis = dir.join("genesis.toml");
    if genesis.exists() {
        node.arg("--genesis").arg(&genesis);
    }
    let child = node
        .env("COLDCHAIN_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log_file(dir, log))
        .spawn()
        .expect("start coldchain node");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(rest).is_err() {
        assert!(
            Instant::now() < deadline,
            "node did not open its REST API on {rest}; its log:\n{}",
            read_log(dir, log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Like [`start_node`] with [`Families::ExternalProcesses`], but every process
/// logs at info to `dir/logs/` (see [`log_path`]): the node to `node-1`, each
/// TP to `tp-<family>`. Tests read the logs to see who served a family.
pub fn start_node_external_logged(dir: &Path, admin_public_key: &str) -> NodeProcess {
    std::fs::write(
        dir.join("genesis.toml"),
        format!("[settings]\n\"coldchain.admins\" = \"{admin_public_key}\"\n"),
    )
    .unwrap();
    let rest = format!("127.0.0.1:{}", free_port());
    let component = format!("tcp://127.0.0.1:{}", free_port());
    let mut children = vec![spawn_external_node(dir, &rest, &component, "node-1")];
    for family in ["registry", "custody", "sensor"] {
        children.push(
            Command::new(BIN)
                .args(["tp", family, "--connect", &component])
                .env("COLDCHAIN_LOG", "info")
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(log_file(dir, &format!("tp-{family}")))
                .spawn()
                .expect("start coldchain tp"),
        );
    }
    NodeProcess {
        children,
        url: format!("http://{rest}"),
        component,
    }
}

/// [`restart_node`] for a node started by [`start_node_external_logged`]:
/// kills the node process (SIGKILL, as a crash would) and starts it again on
/// the same data directory, REST address and component endpoint, still with
/// `--no-in-process-families`, logging to `log`. The TP processes keep
/// running; until they re-register by themselves the node serves no family.
pub fn restart_node_external(dir: &Path, mut node: NodeProcess, log: &str) -> NodeProcess {
    let mut old = node.children.remove(0);
    let _ = old.kill();
    let _ = old.wait();
    let rest = node.url.trim_start_matches("http://").to_string();
    let restarted = spawn_external_node(dir, &rest, &node.component, log);
    node.children.insert(0, restarted);
    node
}
