//! End to end: `coldchain demo` as a real process (embedded node, embedded
//! MQTT broker, gateway, MQTT and serial loggers, API), then the story's
//! outcome checked from outside through the provenance API.
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{free_port, start_api, wait_for_port, Reaper, BIN};

const GTIN: &str = "09501101530003";

fn verdict(http: &str, path: &str) -> serde_json::Value {
    // A tiny HTTP/1.1 GET so the test needs no HTTP client crate.
    use std::io::{Read, Write};
    let address = http.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

#[test]
fn demo_tells_the_whole_story_and_the_api_shows_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(BIN)
        .args([
            "demo",
            "--rest-port",
            "0",
            "--component-port",
            "0",
            "--api-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .env("COLDCHAIN_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coldchain demo");
    let stdout = demo.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    let mut api = None;
    loop {
        let line = match received.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => line,
            Err(_) => {
                let _ = demo.kill();
                panic!(
                    "demo stalled; transcript so far:\n{}",
                    transcript.join("\n")
                );
            }
        };
        if let Some(url) = line.trim().strip_prefix("provenance API") {
            api = Some(url.trim().to_string());
        }
        let serving = line.starts_with("Serving until Ctrl-C");
        let stopped = line.contains("the demo stopped");
        transcript.push(line);
        if serving || stopped {
            break;
        }
    }
    let text = transcript.join("\n");
    let api = api.expect("the demo prints the API address");

    // The story's turning points, as the ledger worded them.
    assert!(text.contains("SHP-B-001 — refused by the ledger"), "{text}");
    assert!(text.contains("COMPROMISED"), "{text}");
    assert!(
        text.contains("dispensing pack A0001 a second time — refused"),
        "{text}"
    );
    assert!(text.contains("request FULFILLED"), "{text}");

    // From outside, through the API: what a pharmacist's scanner would see.
    let path = |lot: &str, serial: &str| format!("/01/{GTIN}/10/{lot}/21/{serial}");
    assert_eq!(
        verdict(&api, &path("VAX-2026-A", "A0002"))["verdict"],
        "authentic_in_spec"
    );
    assert_eq!(
        verdict(&api, &path("VAX-2026-A", "A0001"))["verdict"],
        "already_dispensed"
    );
    assert_eq!(
        verdict(&api, &path("VAX-2026-B", "B0001"))["verdict"],
        "compromised"
    );
    assert_eq!(
        verdict(&api, &path("VAX-2026-C", "C0001"))["verdict"],
        "recalled"
    );
    assert_eq!(
        verdict(&api, &path("VAX-2026-A", "ZZZZ"))["verdict"],
        "unknown"
    );

    // The participants' keys are on disk and the printed partner links work:
    // their tokens open the partner-only endpoints the page and board call.
    let keys = dir.path().join("demo").join("keys");
    for org in ["meddist", "bloodbank", "citypharm", "cityhosp"] {
        assert!(keys.join(format!("{org}.priv")).is_file(), "{org}.priv");
        assert!(keys.join(format!("{org}.pub")).is_file(), "{org}.pub");
    }
    let link_token = |needle: &str| -> String {
        let line = transcript
            .iter()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no link {needle:?} in:\n{text}"));
        line.rsplit("#token=").next().unwrap().trim().to_string()
    };
    let board_token = link_token("/blood#token=");
    let page_token = link_token("/#token=");
    assert_eq!(
        authorized_status(&api, "/api/v1/blood/requests", &board_token),
        200
    );
    assert_eq!(
        authorized_status(&api, "/api/v1/lots/09501101530003/VAX-2026-A", &page_token),
        200
    );
    let minted = Command::new(BIN)
        .args(["token", "--api", &api, "--json", "--key"])
        .arg(keys.join("citypharm.priv"))
        .output()
        .expect("run coldchain token");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );

    // Ctrl-C stops everything cleanly.
    let _ = nix_interrupt(demo.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if demo.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = demo.kill();
            panic!("demo did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The HTTP status of a GET with `Authorization: Bearer <token>`.
fn authorized_status(http: &str, path: &str, token: &str) -> u16 {
    use std::io::{Read, Write};
    let address = http.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn nix_interrupt(pid: u32) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill -INT failed"))
    }
}

/// `coldchain demo --exit` plays the story and stops by itself with success.
/// Its chain outlives it: a node restarted on the demo's data and a provenance
/// API with a fresh index (which catches up from the chain's events alone)
/// give the same verdicts, and `coldchain verify` reads one straight from the
/// ledger.
#[test]
fn demo_exit_ends_by_itself_and_its_chain_tells_the_story_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = Command::new(BIN)
        .args([
            "demo",
            "--exit",
            "--json",
            "--rest-port",
            "0",
            "--component-port",
            "0",
            "--api-port",
            "0",
            "--data-dir",
        ])
        .arg(&data)
        .env("COLDCHAIN_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run coldchain demo --exit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo --exit failed ({:?}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("Serving until Ctrl-C"), "{stdout}");
    // Nothing went wrong, so nothing says ERROR: the embedded broker used to log
    // one at every start (the demo's readiness probe closed a TCP connection
    // before sending MQTT CONNECT).
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "the demo logged errors:\n{}",
        errors.join("\n")
    );
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("demo --json prints a summary:\n{stdout}"));
    let summary_verdict = |serial: &str| {
        summary["verdicts"][serial]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // The ledger again, from the demo's data directory.
    let (rest, component) = (free_port(), free_port());
    let rest_url = format!("http://127.0.0.1:{rest}");
    let component = format!("tcp://127.0.0.1:{component}");
    let node = Command::new(BIN)
        .args(["node", "--data-dir"])
        .arg(data.join("node"))
        .args([
            "--rest-api",
            &format!("127.0.0.1:{rest}"),
            "--component",
            &component,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart coldchain node on the demo's chain");
    let _node = Reaper(node);
    wait_for_port(rest);
    let fresh_api = start_api(dir.path(), "fresh", &rest_url, &component);
    let api_url = fresh_api.url.clone();
    let path = |lot: &str, serial: &str| format!("/01/{GTIN}/10/{lot}/21/{serial}");
    // The fresh index catches up from block 0. Until it is level with the
    // chain, verification answers 503 "cannot verify now" rather than a
    // verdict from part of the chain; /health says when it is current.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while coldchain_node::testing::http::get(&api_url, "/health")
        .map(|r| r.status)
        .ok()
        != Some(200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the API's fresh index did not catch up with the demo's chain"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    while verdict(&api_url, &path("VAX-2026-C", "C0001"))["verdict"] != "recalled" {
        assert!(
            std::time::Instant::now() < deadline,
            "the API's fresh index did not catch up with the demo's chain"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (lot, serial, expected) in [
        ("VAX-2026-A", "A0001", "already_dispensed"),
        ("VAX-2026-A", "A0002", "authentic_in_spec"),
        ("VAX-2026-B", "B0001", "compromised"),
        ("VAX-2026-C", "C0001", "recalled"),
    ] {
        let answer = verdict(&api_url, &path(lot, serial));
        assert_eq!(answer["verdict"], expected, "{lot}/{serial}: {answer}");
        assert!(
            summary_verdict(serial).starts_with(expected),
            "the demo's own summary agrees for {serial}: {summary}"
        );
    }
    // The door opening on lot A's journey was an excursion within budget.
    let lot_a = verdict(&api_url, &path("VAX-2026-A", "A0002"));
    let reasons = lot_a["reasons"].to_string();
    assert!(
        reasons.contains("(1 excursion within budget)"),
        "lot A stayed in spec through at least one excursion: {lot_a}"
    );

    // The CLI reads the same verdict from the ledger itself (no API).
    let cli = Command::new(BIN)
        .args([
            "verify",
            &path("VAX-2026-B", "B0001"),
            "--url",
            &rest_url,
            "--json",
        ])
        .output()
        .expect("run coldchain verify");
    let cli_out = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli_out.contains("compromised"),
        "coldchain verify: {cli_out}"
    );
    assert_eq!(cli.status.code(), Some(4), "compromised: do not dispense");
    // Through the provenance API (--api): the same verdict and exit codes.
    for (serial, lot, code) in [("A0002", "VAX-2026-A", 0), ("ZZZZ", "VAX-2026-A", 3)] {
        let out = Command::new(BIN)
            .args(["verify", &path(lot, serial), "--api", &api_url])
            .output()
            .expect("run coldchain verify --api");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{serial}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
