//! Real processes for fault tests: a private Mosquitto that keeps its sessions
//! across restarts, the embedded node as a child process (this test binary
//! re-run as the node), and the gateway binary. Every child is killed when its
//! handle is dropped, so a failing test leaves nothing running.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on 127.0.0.1:{port} after 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Mosquitto of our own on a free port, with `persistence true` so QoS 1
/// sessions (subscriptions, queued and unacknowledged messages) survive a
/// restart. Never the system broker on 1883.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        let port = super::free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n\
                 persistence true\npersistence_location {}/\npersistence_file mosquitto.db\n\
                 max_queued_messages 200000\nmax_inflight_messages 100\n\
                 user root\nlog_dest stderr\nlog_type error\nlog_type warning\n",
                data.display()
            ),
        )
        .unwrap();
        let mut broker = Mosquitto {
            port,
            conf,
            child: None,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("start mosquitto (install the mosquitto package)");
        self.child = Some(child);
        wait_for_port(self.port, "mosquitto");
    }

    /// Stops the broker as an operator would (SIGTERM: it writes its
    /// persistence file) and starts it again on the same port and data.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            child.wait().unwrap();
        }
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Environment of the node child process.
const NODE_DIR: &str = "COLDCHAIN_TEST_NODE_DIR";
const NODE_PORT: &str = "COLDCHAIN_TEST_NODE_PORT";
const NODE_DEVICES: &str = "COLDCHAIN_TEST_NODE_DEVICES";
const NODE_GATEWAY_KEY: &str = "COLDCHAIN_TEST_NODE_GATEWAY_KEY";

/// The embedded node in a process of its own: this test binary run again with
/// only `child_test` selected, which calls [`node_child_main`]. `kill()` is a
/// real `kill -9`.
pub struct NodeProcess {
    pub port: u16,
    child: Option<Child>,
}

impl NodeProcess {
    pub fn start(
        child_test: &str,
        data_dir: &Path,
        port: u16,
        devices: &[&str],
        gateway_public_key: &str,
    ) -> NodeProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                child_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(NODE_DIR, data_dir)
            .env(NODE_PORT, port.to_string())
            .env(NODE_DEVICES, devices.join(","))
            .env(NODE_GATEWAY_KEY, gateway_public_key)
            .env("COLDCHAIN_LOG", "warn")
            // The child exits when this pipe closes, i.e. when the test is gone.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the node child process");
        wait_for_port(port, "the node child process's REST API");
        NodeProcess {
            port,
            child: Some(child),
        }
    }

    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of the node child process: a real [`coldchain_node::Node`] with the
/// coldchain families, serving until killed or until the parent goes away.
/// Does nothing when not started by [`NodeProcess::start`].
pub fn node_child_main() {
    let (Ok(dir), Ok(port), Ok(devices), Ok(key)) = (
        std::env::var(NODE_DIR),
        std::env::var(NODE_PORT),
        std::env::var(NODE_DEVICES),
        std::env::var(NODE_GATEWAY_KEY),
    ) else {
        return;
    };
    let devices: Vec<&str> = devices.split(',').collect();
    let port: u16 = port.parse().unwrap();
    let config = super::chain::node_config(Path::new(&dir), port, &devices, &key);
    let _node = coldchain_node::Node::start(config).expect("start the embedded node");
    // Serve until the parent closes our stdin (or kills us).
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
    std::process::exit(0);
}

/// The gateway binary on `config`, its log (warnings and errors) appended to
/// `log`. Killed (`kill -9`) by [`GatewayProcess::kill`] or when dropped.
pub struct GatewayProcess {
    child: Option<Child>,
}

impl GatewayProcess {
    pub fn start(config: &Path, log: &Path) -> GatewayProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coldchain-gateway"))
            .arg("--config")
            .arg(config)
            .env("COLDCHAIN_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the gateway binary");
        GatewayProcess { child: Some(child) }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one gauge or counter (without labels) from a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// GET `/metrics` of a gateway process, if it answers.
pub async fn metrics_page(addr: &str) -> Option<String> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
    response.text().await.ok()
}
