//! `coldchain watch` pointed at an endpoint where no validator answers —
//! nothing listening, or a service that does not speak ZeroMQ — gives up
//! after `--timeout` with a message naming the endpoint and what to check,
//! instead of waiting silently forever.
mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, BIN};

/// Runs `coldchain watch -C endpoint --timeout 1`; (exit code, stderr).
/// A watch still running after 60 s fails the test (the old behaviour: it hung).
fn watch(endpoint: &str) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["watch", "-C", endpoint, "--timeout", "1"])
        .env_remove("COLDCHAIN_COMPONENT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run coldchain watch");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("coldchain watch -C {endpoint} --timeout 1 still waits after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status.code(), stderr)
}

fn assert_names_endpoint_and_what_to_check(endpoint: &str, code: Option<i32>, stderr: &str) {
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("no validator answered at {endpoint} within 1 s")),
        "{stderr}"
    );
    assert!(
        stderr.contains("component") && stderr.contains("--timeout"),
        "{stderr}"
    );
}

#[test]
fn watch_with_nothing_listening_gives_up_and_names_the_endpoint() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let (code, stderr) = watch(&endpoint);
    assert_names_endpoint_and_what_to_check(&endpoint, code, &stderr);
}

#[test]
fn watch_against_a_service_that_is_not_zeromq_gives_up_too() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    // A plain TCP service: accepts, answers like a web server, keeps the
    // connection open.
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            open.push(stream);
        }
    });
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (code, stderr) = watch(&endpoint);
    assert_names_endpoint_and_what_to_check(&endpoint, code, &stderr);
}
