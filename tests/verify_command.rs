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

/// What a barcode scanner typed is read before anything is asked: an
/// application identifier the parser does not read, a wrong GTIN check digit
/// or a scan naming only a GTIN is a usage error (exit 1) that says what was
/// wrong; a scan is not combined with --gtin/--lot/--serial.
#[test]
fn verify_reads_scanner_text_and_names_what_is_wrong_with_a_bad_scan() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for (scan, expected) in [
        ("(01)09501101530003(99)X(21)S1", "(99)"),
        ("]d2010950110153000421S1", "(01)"),
        ("(17)281231(10)L1", "no GTIN"),
        ("]d20109501101530003", "alone names no pack or lot"),
        (
            "010950110153000310L1-THAT-SWALLOWED-21S1",
            "separator (GS) may be missing",
        ),
    ] {
        let (code, stderr) = verify(&[scan, "--url", &url]);
        assert_eq!(code, Some(1), "{scan:?}: {stderr}");
        assert!(stderr.contains(expected), "{scan:?}: {stderr}");
    }
    // A readable scan gets as far as asking the ledger (nothing answers: exit 2).
    for scan in [
        "(01)09501101530003(17)281231(10)L1(21)S1",
        "]d201095011015300031728123110L1\u{1d}21S1",
    ] {
        let (code, stderr) = verify(&[scan, "--url", &url]);
        assert_eq!(code, Some(2), "{scan:?}: {stderr}");
    }
    let (code, stderr) = verify(&["(01)09501101530003(21)S1", "--lot", "L2", "--url", &url]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
