//! The real Hyperledger Sawtooth 1.2.6 stack for tests, built and started by
//! `scripts/sawtooth.sh` (validator, REST API, settings TP and devmode or
//! PBFT engines from `../shared/sawtooth`). Tests fail, never skip, when it
//! cannot be built or started: a claim about real Sawtooth counts only once
//! it ran against the real validator.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coldchain_node::testing::http;

use super::{Reaper, BIN};

/// `scripts/sawtooth.sh` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sawtooth.sh")
}

/// Runs `scripts/sawtooth.sh ARGS…`; panics with its output when it fails.
pub fn run_script(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/sawtooth.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "scripts/sawtooth.sh {} failed (the real Sawtooth stack is required; \
         build it with `scripts/sawtooth.sh build`):\n{text}",
        args.join(" ")
    );
    text
}

/// Builds the stack if it is not built yet (a no-op when it is).
pub fn build() {
    run_script(&["build"]);
}

/// `KEY=VALUE` lines of a `sawtooth.env` file.
fn read_env(dir: &Path) -> BTreeMap<String, String> {
    let path = dir.join("sawtooth.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} not written by the script: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// Processes started by `scripts/sawtooth.sh single|network` in `dir`,
/// stopped (`stop`) when dropped.
pub struct Network {
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Network {
    /// One validator with devmode, REST API and settings TP; `admins` go
    /// into `coldchain.admins`.
    pub fn single(dir: &Path, admins: &[&str]) -> Network {
        build();
        let dir_arg = dir.to_string_lossy().to_string();
        let mut args = vec!["single", "--dir", dir_arg.as_str()];
        for admin in admins {
            args.push("--admin");
            args.push(admin);
        }
        run_script(&args);
        Network {
            dir: dir.to_path_buf(),
            env: read_env(dir),
        }
    }

    /// Four validators with PBFT (`engine`: "patched" or "stock") from
    /// `validator-config/genesis`; `admin_key` is the founder's admin key file
    /// and `transactors` may sign besides the admins.
    pub fn pbft(dir: &Path, engine: &str, admin_key: &Path, transactors: &[&str]) -> Network {
        build();
        let dir_arg = dir.to_string_lossy().to_string();
        let key_arg = admin_key.to_string_lossy().to_string();
        let mut args = vec![
            "network",
            "--dir",
            dir_arg.as_str(),
            "--engine",
            engine,
            "--admin-key",
            key_arg.as_str(),
        ];
        for key in transactors {
            args.push("--transactor");
            args.push(key);
        }
        run_script(&args);
        Network {
            dir: dir.to_path_buf(),
            env: read_env(dir),
        }
    }

    pub fn rest_url(&self) -> String {
        self.env["REST_URL"].clone()
    }

    pub fn component(&self) -> String {
        self.env["COMPONENT"].clone()
    }

    pub fn node_rest_url(&self, node: usize) -> String {
        self.env[&format!("REST_URL_{node}")].clone()
    }

    pub fn node_component(&self, node: usize) -> String {
        self.env[&format!("COMPONENT_{node}")].clone()
    }

    /// kill -9 validator `node` and its consensus engine.
    pub fn kill(&self, node: usize) {
        let dir = self.dir.to_string_lossy().to_string();
        run_script(&["kill", "--dir", &dir, "--node", &node.to_string()]);
    }

    /// Starts validator `node` and its engine again on the same data.
    pub fn restart(&self, node: usize) {
        let dir = self.dir.to_string_lossy().to_string();
        run_script(&["start-node", "--dir", &dir, "--node", &node.to_string()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The three `coldchain tp` processes connected to `component`, logging to
/// `dir/tp-<family>.log`; returns once each has registered.
pub fn start_tps(dir: &Path, component: &str) -> Vec<Reaper> {
    let mut tps = Vec::new();
    for family in ["registry", "custody", "sensor"] {
        let log = std::fs::File::create(dir.join(format!("tp-{family}.log"))).expect("TP log");
        let child = Command::new(BIN)
            .args(["tp", family, "--connect", component])
            .env("COLDCHAIN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start coldchain tp");
        tps.push(Reaper(child));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for family in ["registry", "custody", "sensor"] {
        let log = dir.join(format!("tp-{family}.log"));
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("registered coldchain-")
        {
            assert!(
                Instant::now() < deadline,
                "coldchain tp {family} did not register with {component}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tps
}

/// Each forwarded `POST /batches` body with the status it was answered.
pub type PostedBatches = Arc<Mutex<Vec<(Vec<u8>, u16)>>>;

/// An HTTP pass-through in front of a REST API that keeps, in order, the
/// body of every `POST /batches` it forwarded and the answer's status: the exact signed BatchLists a
/// run submitted, to replay elsewhere.
pub struct Recorder {
    pub url: String,
    pub posted: PostedBatches,
}

impl Recorder {
    pub fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recording proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let posted = Arc::new(Mutex::new(Vec::new()));
        let (upstream, kept) = (upstream.to_string(), posted.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (upstream, kept) = (upstream.clone(), kept.clone());
                std::thread::spawn(move || {
                    let _ = forward(stream, &upstream, &kept);
                });
            }
        });
        Recorder { url, posted }
    }

    /// Each forwarded `POST /batches` body with the status the API answered.
    pub fn batch_lists(&self) -> Vec<(Vec<u8>, u16)> {
        self.posted.lock().expect("recorder lock").clone()
    }
}

/// One request per connection (answered with `Connection: close`).
fn forward(
    mut stream: TcpStream,
    upstream: &str,
    kept: &Mutex<Vec<(Vec<u8>, u16)>>,
) -> std::io::Result<()> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or("GET").to_string();
    let path = request_line.next().unwrap_or("/").to_string();
    let mut length = 0usize;
    let mut content_type = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = raw[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let reply = http::request(upstream, &method, &path, content_type.as_deref(), &body)?;
    if method == "POST" && path == "/batches" {
        kept.lock()
            .expect("recorder lock")
            .push((body, reply.status));
    }
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&reply.body)
}

/// Every JSON key path of `value` with the type of what it holds, array
/// items merged (`data[].header.block_num:string`): what a client's parser
/// depends on, without the values.
pub fn key_paths(value: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &serde_json::Value, path: String, out: &mut std::collections::BTreeSet<String>) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                out.insert(format!("{path}:object"));
                for (k, v) in map {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(v, child, out);
                }
            }
            Value::Array(items) => {
                out.insert(format!("{path}:array"));
                for item in items {
                    walk(item, format!("{path}[]"), out);
                }
            }
            Value::String(_) => {
                out.insert(format!("{path}:string"));
            }
            Value::Number(_) => {
                out.insert(format!("{path}:number"));
            }
            Value::Bool(_) => {
                out.insert(format!("{path}:bool"));
            }
            Value::Null => {
                out.insert(format!("{path}:null"));
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, String::new(), &mut out);
    out
}
