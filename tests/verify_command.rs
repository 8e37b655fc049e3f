//! `coldchain verify` as a script sees it: distinct exit codes (0 authentic,
//! 1 usage or input error, 2 cannot verify now, 3 unknown, 4 do not dispense),
//! and a wrong address named as such instead of an UNKNOWN verdict. The
//! verdict codes against a real ledger are checked in the CLI scenario
//! (`tests/support/scenario.rs`).
mod support;

use std::process::{Command, Output};

use support::{free_port, start_api, BIN};

const LINK: &str = "/01/09501101530003/10/L1/21/S1";

fn verify(args: &[&str]) -> (Option<i32>, String) {
    let out: Output = Command::new(BIN)
        .arg("verify")
        .args(args)
        .env_remove("COLDCHAIN_URL")
        .env_remove("COLDCHAIN_API")
        .output()
        .expect("run coldchain verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn verify_with_nothing_at_the_url_exits_2_and_says_nothing_answers() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, stderr) = verify(&[LINK, "--url", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("nothing answers at {url}")),
        "{stderr}"
    );
}

#[test]
fn verify_refuses_a_gtin_alone_and_a_link_with_flags_as_usage_errors() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        vec!["/01/09501101530003", "--url", &url],
        vec!["--gtin", "09501101530003", "--url", &url],
    ] {
        let (code, stderr) = verify(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("alone names no pack or lot"), "{stderr}");
    }
    let (code, stderr) = verify(&[LINK, "--lot", "L2", "--url", &url]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// A provenance API with no ledger behind it: named when given as --url, and
/// its 503 cannot_verify_now is exit 2 (no verdict) when asked with --api.
#[test]
fn verify_names_the_provenance_api_given_as_url_and_maps_its_503_to_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens at its REST API or component endpoint.
    let api = start_api(
        dir.path(),
        "no-ledger",
        &format!("http://127.0.0.1:{}", free_port()),
        &format!("tcp://127.0.0.1:{}", free_port()),
    );
    let url = api.url.clone();

    let (code, stderr) = verify(&[LINK, "--url", &url]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is the coldchain provenance API, not a Sawtooth REST API"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .args(["verify", LINK, "--api", &url, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(json["error"], "cannot_verify_now", "{json}");
    assert!(json["verdict"].is_null(), "{json}");
}
