//! The official Hyperledger Sawtooth Python SDK (`sawtooth-sdk` 1.2.5 from
//! PyPI, code coldchain did not write) against a real `coldchain node`
//! process, as proof that the node speaks Sawtooth's protocols:
//!
//! - `tests/python/intkey_tp.py`, an intkey transaction processor on the
//!   SDK's `TransactionProcessor`, registers on the component endpoint and
//!   serves the `intkey` family (state get/set/delete, events, receipt data,
//!   invalid transactions, pings). The node keeps its own families
//!   in-process; intkey is served only by the Python TP.
//! - `tests/python/intkey_client.py` signs batches with `sawtooth_signing` and
//!   the SDK's protobufs, submits them over REST, waits on their statuses,
//!   reads state and receipts back and follows the chain's events over the
//!   SDK's ZeroMQ `Stream`, checking every answer (it prints the count).
//! - After a node restart, the SDK reconnects and registers again by itself.
//!
//! The SDK lives in a Python venv made by `scripts/setup.sh --test`;
//! `COLDCHAIN_TEST_SAWTOOTH_PYTHON` names its python (`scripts/test.sh` sets it).
mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{keygen, restart_node, start_node, Families, NodeProcess};

const PYTHON_VARIABLE: &str = "COLDCHAIN_TEST_SAWTOOTH_PYTHON";

/// Known differences from a Sawtooth 1.2 validator that the client reports
/// (with details on its stderr) without failing. Add an entry only with a
/// note on why the node cannot follow Sawtooth there; the test fails while a
/// listed deviation is gone, so the list stays true. Fixed so far:
/// `extended-data-dropped` (a TP's `extended_data` for an invalid
/// transaction is reported in `/batch_statuses`) and
/// `access-violation-overrides-tp-answer` (after an access outside the
/// declared inputs/outputs, the TP's own INVALID answer is reported).
const KNOWN_DEVIATIONS: &[&str] = &[];

/// Longest the client may run; it has its own shorter waits for every step.
const CLIENT_DEADLINE: Duration = Duration::from_secs(240);

/// The python of the venv holding `tests/python/requirements.txt`.
fn sdk_python() -> PathBuf {
    let Some(python) = std::env::var_os(PYTHON_VARIABLE) else {
        panic!(
            "{PYTHON_VARIABLE} is not set. This test runs the official Sawtooth Python SDK from a \
             venv: run `scripts/setup.sh --test` (it creates \
             ~/.cache/coldchain/sawtooth-python, or $COLDCHAIN_PYTHON_VENV) and run the tests \
             with `scripts/test.sh`, or export \
             {PYTHON_VARIABLE}=$HOME/.cache/coldchain/sawtooth-python/bin/python"
        );
    };
    let python = PathBuf::from(python);
    assert!(
        python.exists(),
        "{PYTHON_VARIABLE}={} does not exist; run `scripts/setup.sh --test` to create the \
         Sawtooth Python SDK venv (its output says why it could not)",
        python.display()
    );
    python
}

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn python_command(python: &Path, script: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(python_script(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    command
}

/// A child process killed (SIGKILL) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("({} unreadable: {e})", path.display()))
}

/// A node with the Python intkey TP connected, in its own temp dir.
/// Fields drop in order: the TP, then the node, then the directory.
struct PythonSdkSetup {
    tp: Running,
    node: Option<NodeProcess>,
    tp_log: PathBuf,
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl PythonSdkSetup {
    fn start() -> PythonSdkSetup {
        PythonSdkSetup::start_tp_with(&[])
    }

    /// Starts the node and the Python TP with `tp_arguments` after the endpoint.
    fn start_tp_with(tp_arguments: &[&str]) -> PythonSdkSetup {
        let python = sdk_python();
        let dir = tempfile::tempdir().expect("temp dir");
        let admin = keygen(&dir.path().join("keys"), "admin");
        let node = start_node(dir.path(), &admin, Families::InProcess);
        let tp_log = dir.path().join("intkey_tp.log");
        let tp = Running(
            python_command(&python, "intkey_tp.py")
                .arg(&node.component)
                .args(tp_arguments)
                .stdout(Stdio::null())
                .stderr(File::create(&tp_log).expect("create intkey_tp.log"))
                .spawn()
                .expect("start the Python intkey TP"),
        );
        PythonSdkSetup {
            tp,
            node: Some(node),
            tp_log,
            python,
            dir,
        }
    }

    fn node(&self) -> &NodeProcess {
        self.node.as_ref().expect("a running node")
    }

    fn tp_log(&self) -> String {
        read_log(&self.tp_log)
    }

    fn restart_node(&mut self) {
        let node = self.node.take().expect("a running node");
        self.node = Some(restart_node(self.dir.path(), node));
    }

    /// Runs the client with `extra` arguments; returns its summary once it
    /// succeeded with the known deviations and the TP is still running.
    fn client(&mut self, extra: &[&str]) -> serde_json::Value {
        let dir = self.dir.path();
        let (stdout_path, stderr_path) = (dir.join("client.out"), dir.join("client.err"));
        let mut client = python_command(&self.python, "intkey_client.py")
            .args([
                "--url",
                &self.node().url,
                "--component",
                &self.node().component,
            ])
            .args(extra)
            .stdout(File::create(&stdout_path).expect("create client.out"))
            .stderr(File::create(&stderr_path).expect("create client.err"))
            .spawn()
            .expect("start the Python client");
        let deadline = Instant::now() + CLIENT_DEADLINE;
        let status = loop {
            match client.try_wait().expect("wait for the Python client") {
                Some(status) => break Some(status),
                None if Instant::now() > deadline => {
                    let _ = client.kill();
                    let _ = client.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let stdout = read_log(&stdout_path);
        let tp_exit = self.tp.0.try_wait().expect("poll the Python TP");
        let context = format!(
            "\n--- client {extra:?} stdout\n{stdout}\n--- client stderr\n{}\n--- intkey_tp.py log\n{}",
            read_log(&stderr_path),
            self.tp_log()
        );
        let Some(status) = status else {
            panic!("the Python client did not finish within {CLIENT_DEADLINE:?}{context}");
        };
        assert!(
            status.success(),
            "the Python client failed ({status}){context}"
        );
        assert!(
            tp_exit.is_none(),
            "the Python TP exited ({tp_exit:?}){context}"
        );
        let summary: serde_json::Value = stdout
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| panic!("the client prints a JSON summary{context}"));
        let deviations: Vec<&str> = summary["deviations"]
            .as_array()
            .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let expected: &[&str] = if extra.contains(&"--after-restart") {
            &[]
        } else {
            KNOWN_DEVIATIONS
        };
        assert_eq!(
            deviations, expected,
            "differences from Sawtooth seen by the Python SDK{context}"
        );
        summary
    }
}

fn checks_run(summary: &serde_json::Value) -> u64 {
    summary["checks"].as_u64().unwrap_or(0)
}

#[test]
fn a_python_sdk_tp_and_client_run_intkey_on_the_node() {
    let mut setup = PythonSdkSetup::start();
    let summary = setup.client(&[]);
    assert!(
        checks_run(&summary) > 50,
        "the client ran its checks: {summary}"
    );
    assert!(
        setup.tp_log().contains("register attempt: OK"),
        "the SDK logs the node's TP_REGISTER_RESPONSE as OK:\n{}",
        setup.tp_log()
    );
}

/// Sawtooth 1.2's registration protocol version 1: a TP asking for the RAW
/// header style gets the signed header bytes (it checks the signature over
/// them) and no parsed header; the SDK accepts the node's echoed version.
#[test]
fn a_python_sdk_tp_with_raw_headers_gets_the_signed_header_bytes() {
    let mut setup = PythonSdkSetup::start_tp_with(&["--raw-header"]);
    let summary = setup.client(&[]);
    assert!(
        checks_run(&summary) > 50,
        "the client ran its checks: {summary}"
    );
    let log = setup.tp_log();
    assert!(log.contains("register attempt: OK"), "{log}");
    assert!(!log.contains("does not support"), "{log}");
    assert!(!log.contains("header_bytes"), "{log}");
}

/// The node pings peers idle for 10 s and drops a registered TP silent for
/// 30 s; the Python SDK answers the pings, so its TP stays registered.
#[test]
fn a_python_sdk_tp_stays_registered_while_idle() {
    let mut setup = PythonSdkSetup::start();
    let summary = setup.client(&["--idle-seconds", "35"]);
    assert!(
        checks_run(&summary) > 50,
        "the client ran its checks: {summary}"
    );
}

/// The SDK notices the lost connection, reconnects and registers again once
/// the node is back; the restarted node kept the committed state.
#[test]
fn a_python_sdk_tp_registers_again_after_the_node_restarts() {
    let mut setup = PythonSdkSetup::start();
    setup.client(&[]);
    setup.restart_node();
    let summary = setup.client(&["--after-restart"]);
    assert!(
        checks_run(&summary) > 5,
        "the client ran its checks: {summary}"
    );
    assert!(
        setup.tp_log().contains("reregistering with validator"),
        "the SDK re-registered after the restart:\n{}",
        setup.tp_log()
    );
}
