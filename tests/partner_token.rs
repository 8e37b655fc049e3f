//! `coldchain token` mints a provenance API token for a registered agent's
//! key (a signed POST /api/v1/tokens) and prints the page links that carry
//! it; the token opens partner-only endpoints such as the blood board's.
mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{gln, keygen, start_api, start_node, Cli, Families, BIN};

fn get_with_token(api: &str, path: &str, token: &str) -> String {
    let address = api.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn token_command_mints_a_token_that_opens_the_blood_board() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let admin = keygen(&keys, "admin");
    let bank = keygen(&keys, "bank");
    keygen(&keys, "stranger");
    let node = start_node(dir.path(), &admin, Families::InProcess);
    let cli = Cli {
        url: node.url.clone(),
        keys: keys.clone(),
    };
    cli.onboard(
        "bank",
        &bank,
        "bloodbank",
        "blood-bank",
        &gln("950110100006"),
    );

    let api_process = start_api(dir.path(), "partner", &node.url, &node.component);
    let api = api_process.url.clone();

    let mint = |key: &str| {
        Command::new(BIN)
            .args(["token", "--api", &api, "--label", "test", "--json", "--key"])
            .arg(keys.join(format!("{key}.priv")))
            .output()
            .expect("run coldchain token")
    };
    // The API learns of the agent once its index has caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let minted = loop {
        let out = mint("bank");
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .expect("token --json prints JSON");
        }
        assert!(
            Instant::now() < deadline,
            "no token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let token = minted["token"].as_str().expect("a token");
    assert_eq!(minted["org_id"], "bloodbank");
    assert_eq!(
        minted["blood_board"],
        format!("{api}/blood#token={token}").as_str()
    );
    assert_eq!(minted["page"], format!("{api}/#token={token}").as_str());
    let answer = get_with_token(&api, "/api/v1/blood/requests", token);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let refused = get_with_token(&api, "/api/v1/blood/requests", "not-a-token");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // A key that is no agent gets the API's reason, not a token.
    let out = mint("stranger");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
