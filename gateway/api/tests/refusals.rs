//! Refusals, table-driven: anonymous callers, unregistered keys, other
//! organisations, bad signatures, stale timestamps, unknown tokens and revoked
//! agents get clear 401/403 JSON errors on every restricted endpoint; bodies
//! over 8 MiB or without a length get 413/411, never an empty body.
mod support;

use coldchain_api::access::signed_message;
use coldchain_api::chain::ingest;
use coldchain_processors::messages::coldchain::{RegistryPayload_oneof_action, RevokeAgent};
use coldchain_processors::signing::Signer;
use support::http::{get, now_s, signed_get};
use support::scenario::{self, GTIN, T0};
use support::Ledger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Restricted endpoints: (method, path and query).
fn restricted() -> Vec<(&'static str, String)> {
    vec![
        ("GET", format!("/api/v1/lots/{GTIN}/L-OK")),
        ("GET", format!("/api/v1/lots/{GTIN}/L-OK/epcis")),
        ("GET", "/api/v1/shipments/SH-COLD/readings".into()),
        ("GET", "/api/v1/blood/requests".into()),
        ("GET", "/api/v1/blood/units?component=red_cells".into()),
        ("GET", "/api/v1/audit".into()),
        ("POST", "/api/v1/batches".into()),
    ]
}

/// Sends `method path` with the given headers; (status, JSON body).
async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut request = match method {
        "POST" => client.post(url).body(vec![1u8, 2, 3]),
        _ => client.get(url),
    };
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("API answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn signature_headers(
    signer: &Signer,
    method: &str,
    path_and_query: &str,
    at: u64,
) -> Vec<(&'static str, String)> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let ts = at.to_string();
    vec![
        ("X-Coldchain-Key", signer.public_key().to_string()),
        (
            "X-Coldchain-Signature",
            signer.sign(signed_message(method, path, query, &ts).as_bytes()),
        ),
        ("X-Coldchain-Timestamp", ts),
    ]
}

#[tokio::test]
async fn every_restricted_endpoint_refuses_unauthenticated_and_unauthorised_callers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ledger = Ledger::new();
    let parties = scenario::register(&mut ledger);
    scenario::ship_to_carrier(&mut ledger, &parties, "SH-COLD", "L-OK", "D1", T0 + 100);
    let api = support::start_offline_api(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
    let index = api.index();
    let feed = |ledger: &Ledger, from: usize| {
        let index = index.clone();
        let blocks = ledger.blocks[from..].to_vec();
        let lookup = ledger.lookup();
        async move {
            for update in blocks {
                ingest(index.as_ref(), &lookup, update)
                    .await
                    .expect("ingested");
            }
        }
    };
    feed(&ledger, 0).await;
    let base = api.url();
    let unregistered_key = Signer::generate();
    let unregistered = &unregistered_key;
    let maker = &parties.maker;
    let now = now_s();

    // (who, credentials for method+path, expected status for every endpoint)
    type Headers<'a> = Box<dyn Fn(&str, &str) -> Vec<(&'static str, String)> + 'a>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("anonymous", Box::new(move |_: &str, _: &str| vec![]), 401),
        (
            "unregistered key",
            Box::new(move |m, p| signature_headers(unregistered, m, p, now)),
            403,
        ),
        (
            "stale timestamp",
            Box::new(move |m, p| signature_headers(maker, m, p, now - 3_600)),
            401,
        ),
        (
            "signature of another request",
            Box::new(move |m, _| signature_headers(maker, m, "/api/v1/status", now)),
            401,
        ),
        (
            "signature by another key",
            Box::new(move |m, p| {
                let mut headers = signature_headers(unregistered, m, p, now);
                headers[0].1 = maker.public_key().to_string();
                headers
            }),
            401,
        ),
        (
            "garbage signature",
            Box::new(move |m, p| {
                let mut headers = signature_headers(maker, m, p, now);
                headers[1].1 = "zz".into();
                headers
            }),
            401,
        ),
        (
            "unknown token",
            Box::new(move |_, _| vec![("Authorization", format!("Bearer {}", "ab".repeat(32)))]),
            401,
        ),
    ];
    for (who, headers, expected) in &cases {
        for (method, path) in restricted() {
            let (status, body) = send(&base, method, &path, &headers(method, &path)).await;
            assert_eq!(status, *expected, "{who}: {method} {path}: {body}");
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{who}: {method} {path}: {body}"
            );
            if *who == "unregistered key" {
                // The whole key, so the caller can tell which of its keys it was.
                let key = unregistered.public_key();
                assert_eq!(key.len(), 66);
                assert!(
                    body["message"].as_str().is_some_and(|m| m.contains(key)),
                    "{who}: {method} {path}: {body}"
                );
            }
        }
    }

    // Another organisation's lot, EPCIS and readings: 403.
    for path in [
        format!("/api/v1/lots/{GTIN}/L-OK"),
        format!("/api/v1/lots/{GTIN}/L-OK/epcis"),
        "/api/v1/shipments/SH-COLD/readings".into(),
    ] {
        let (status, body) = signed_get(&base, &path, &parties.stranger).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // Those refusals of a registered agent are in the audit log, with their status.
    let audit = index
        .audit_entries(parties.stranger.public_key(), 10)
        .await
        .expect("audit");
    let refused: Vec<_> = audit.iter().filter(|e| e.status == 403).collect();
    assert_eq!(refused.len(), 3, "{audit:?}");
    assert!(
        refused.iter().all(|e| e.subject.starts_with("refused: ")
            && e.org_id == "stranger"
            && e.method == "GET"),
        "{audit:?}"
    );
    // Refusals of unproven or unregistered keys are not (anyone could write them).
    let unproven = index
        .audit_entries(unregistered.public_key(), 10)
        .await
        .expect("audit");
    assert!(unproven.is_empty(), "{unproven:?}");
    let (status, _) = signed_get(&base, "/api/v1/blood/requests", &parties.stranger).await;
    assert_eq!(status, 200, "a registered partner reads the blood board");
    // Blood components as the CLI spells them.
    let (status, body) = signed_get(
        &base,
        "/api/v1/blood/units?component=red-cells",
        &parties.stranger,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Only regulators and inspectors may name another key's audit entries.
    let other = format!("/api/v1/audit?key={}", maker.public_key());
    let (status, body) = signed_get(&base, &other, &parties.stranger).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("only regulators and inspectors")),
        "{body}"
    );
    let own = format!("/api/v1/audit?key={}", parties.stranger.public_key());
    let (status, body) = signed_get(&base, &own, &parties.stranger).await;
    assert_eq!(status, 200, "its own key by name: {body}");
    assert!(
        body["entries"].as_array().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    // A signed token request mints one token: replayed within the freshness
    // window it is refused (it would mint another); a new nonce is a new request.
    let path = "/api/v1/tokens?label=replay";
    let headers = signature_headers(maker, "POST", path, now_s());
    let (status, first) = send(&base, "POST", path, &headers).await;
    assert_eq!(status, 201, "{first}");
    let (status, replayed) = send(&base, "POST", path, &headers).await;
    assert_eq!(status, 401, "{replayed}");
    assert_eq!(replayed["error"], "replayed_request", "{replayed}");
    assert!(replayed["token"].is_null(), "{replayed}");
    let with_nonce = "/api/v1/tokens?label=replay&nonce=2";
    let (status, second) = send(
        &base,
        "POST",
        with_nonce,
        &signature_headers(maker, "POST", with_nonce, now_s()),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(first["token"], second["token"]);

    // A revoked agent is refused everywhere, signed or with an old token.
    let token = support::http::token_for(&base, &parties.stranger).await;
    let before = ledger.blocks.len();
    let mut revoke = RevokeAgent::new();
    revoke.set_public_key(parties.stranger.public_key().into());
    revoke.set_reason("key lost".into());
    let admin = ledger.admin.clone();
    ledger
        .commit(vec![support::registry(
            &admin,
            T0 + 500,
            RegistryPayload_oneof_action::revoke_agent(revoke),
        )])
        .expect("revoked");
    feed(&ledger, before).await;
    for (method, path) in restricted() {
        let (status, body) = send(
            &base,
            method,
            &path,
            &signature_headers(&parties.stranger, method, &path, now_s()),
        )
        .await;
        assert_eq!(status, 403, "revoked: {method} {path}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("revoked")),
            "{body}"
        );
        let (status, _) = send(
            &base,
            method,
            &path,
            &[("Authorization", format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(status, 403, "revoked token: {method} {path}");
    }
    let revoked = index
        .audit_entries(parties.stranger.public_key(), 100)
        .await
        .expect("audit");
    assert!(
        revoked
            .iter()
            .filter(|e| e.status == 403 && e.subject == "refused: agent revoked")
            .count()
            >= 2 * restricted().len(),
        "revoked attempts are audited: {revoked:?}"
    );
    let (status, body) = get(&base, &format!("/01/{GTIN}/10/L-OK")).await;
    assert_eq!(status, 200, "verification stays public: {body}");
    api.stop().await;
}

/// Sends raw request bytes and returns the status line and the body.
async fn raw(base: &str, request: &str) -> (String, serde_json::Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn oversized_or_chunked_bodies_are_refused_not_taken_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = support::start_offline_api(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
    let base = api.url();
    let host = base.trim_start_matches("http://");
    let (status, body) = raw(
        &base,
        &format!("POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 8 * 1024 * 1024 + 1),
    )
    .await;
    assert!(status.contains(" 413 "), "{status} {body}");
    assert_eq!(body["error"], "body_too_large", "{body}");
    let (status, body) = raw(
        &base,
        &format!("POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    )
    .await;
    assert!(status.contains(" 411 "), "{status} {body}");
    assert_eq!(body["error"], "length_required", "{body}");
    // Exactly at the limit the body is read (and then the caller is asked who it is).
    let (status, body) = raw(
        &base,
        &format!("POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
    )
    .await;
    assert!(status.contains(" 401 "), "{status} {body}");
    api.stop().await;
}
