//! Hostile and malformed requests get clear 4xx JSON errors, never a 500.
mod support;

use std::time::Duration;

use coldchain_api::freshness::FreshnessLimits;
use coldchain_api::{Api, ApiConfig, ApiHandle};
use support::http::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn malformed_and_hostile_requests_get_clear_4xx_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: format!("sqlite://{}", dir.path().join("index.db").display()),
        follow: false,
    })
    .await
    .expect("API starts");
    let base = api.url();
    let long = "a".repeat(5_000);
    let cases: Vec<(String, u16, &str)> = vec![
        ("/01/09501101530004/10/L1".into(), 400, "bad_gtin"),
        (
            "/api/v1/verify?gtin=0950110153000X&lot=L1".into(),
            400,
            "bad_gtin",
        ),
        ("/api/v1/verify?lot=L1".into(), 400, "missing_gtin"),
        (
            "/api/v1/verify?gtin=09501101530003".into(),
            400,
            "missing_lot_or_serial",
        ),
        (
            "/api/v1/verify?gtin=09501101530003&lot=%FF%FE".into(),
            400,
            "bad_encoding",
        ),
        (
            format!("/api/v1/verify?gtin=09501101530003&lot={long}"),
            400,
            "query_too_long",
        ),
        (
            "/api/v1/verify?gtin=09501101530003&lot=ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
            400,
            "bad_identifier",
        ),
        (
            "/api/v1/verify?gtin=09501101530003&lot=L1&exp=991399".into(),
            400,
            "bad_expiry",
        ),
        ("/01/09501101530003/99/x".into(), 400, "bad_digital_link"),
        ("/01/09501101530003/10".into(), 400, "bad_digital_link"),
        (
            "/01/09501101530003/10/L1?17=notadate".into(),
            400,
            "bad_expiry",
        ),
        (
            "/api/v1/shipments/S1/readings?limit=99999999".into(),
            400,
            "bad_parameter",
        ),
        (
            "/api/v1/shipments/S1/readings?points=-1".into(),
            400,
            "bad_parameter",
        ),
        (
            "/api/v1/shipments/S1/readings?from=10&to=5".into(),
            400,
            "bad_parameter",
        ),
        (
            "/api/v1/shipments/S1/readings?after=%27%3BDROP%20TABLE".into(),
            400,
            "bad_cursor",
        ),
        (
            "/api/v1/shipments/S1/readings?format=xml".into(),
            400,
            "bad_parameter",
        ),
        (
            "/api/v1/blood/units?component=plasma%3Cscript%3E".into(),
            400,
            "bad_parameter",
        ),
        ("/api/v1/lots/09501101530003/L1".into(), 401, "unauthorized"),
        ("/api/v1/nope".into(), 404, "not_found"),
        ("/etc/passwd".into(), 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let (got, body) = get(&base, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"], code, "{path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
    // A well-formed question about an unknown pack is an answer, not an error.
    let (status, body) = get(&base, "/01/09501101530003/21/S1").await;
    assert_eq!(status, 200);
    assert_eq!(body["verdict"], "unknown");
    let (status, body) = get(&base, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.0.3");
    api.stop().await;
}

/// Starts an API with no node behind it; request bodies may take `body_timeout`.
async fn start_alone(dir: &std::path::Path, body_timeout: Duration) -> ApiHandle {
    Api::start_with_body_timeout(
        ApiConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            rest_url: "http://127.0.0.1:9".into(),
            component: "tcp://127.0.0.1:9".into(),
            index_url: format!("sqlite://{}", dir.join("index.db").display()),
            follow: false,
        },
        FreshnessLimits::default(),
        body_timeout,
    )
    .await
    .expect("API starts")
}

/// Sends raw request bytes (writing while reading, and never closing the
/// sending side early, so a short body stays short rather than ending) and
/// returns the status line and the JSON body, if any.
async fn raw(base: &str, request: Vec<u8>) -> (String, serde_json::Value) {
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        // The server may answer and close before it has read everything.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
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
    drop(sending.await);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn assert_json_error(status_line: &str, body: &serde_json::Value, status: u16, code: &str) {
    assert!(
        status_line.contains(&format!(" {status} ")),
        "{status_line} {body}"
    );
    assert_eq!(body["error"], code, "{status_line} {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.len() > 20),
        "{status_line} {body}"
    );
}

#[tokio::test]
async fn requests_hyper_refuses_before_the_router_get_json_errors_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_alone(dir.path(), coldchain_api::routes::BODY_TIMEOUT).await;
    let base = api.url();
    let host = base.trim_start_matches("http://").to_string();
    let long_query = "a".repeat(100_000);
    let (status, body) = raw(
        &base,
        format!("GET /api/v1/verify?gtin={long_query} HTTP/1.1\r\nHost: {host}\r\n\r\n").into(),
    )
    .await;
    assert_json_error(&status, &body, 414, "uri_too_long");
    let huge_header = "b".repeat(1024 * 1024);
    let (status, body) = raw(
        &base,
        format!("GET /api/v1/status HTTP/1.1\r\nHost: {host}\r\nX-Big: {huge_header}\r\n\r\n")
            .into(),
    )
    .await;
    assert_json_error(&status, &body, 431, "headers_too_large");
    for length in ["-5", "99999999999999999999999999"] {
        let (status, body) = raw(
            &base,
            format!("POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\nhello")
                .into(),
        )
        .await;
        assert_json_error(&status, &body, 400, "bad_request");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("Content-Length")),
            "{body}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_answered_408() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_alone(dir.path(), Duration::from_millis(300)).await;
    let base = api.url();
    let host = base.trim_start_matches("http://").to_string();
    let (status, body) = raw(
        &base,
        format!(
            "POST /api/v1/batches HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\nhello"
        )
        .into(),
    )
    .await;
    assert_json_error(&status, &body, 408, "body_timeout");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("5 of the 1000 bytes"), "{message}");
    api.stop().await;
}

#[tokio::test]
async fn head_is_answered_like_get() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_alone(dir.path(), coldchain_api::routes::BODY_TIMEOUT).await;
    let client = reqwest::Client::new();
    for path in ["/api/v1/status", "/health", "/openapi.json", "/"] {
        let get = client
            .get(format!("{}{path}", api.url()))
            .send()
            .await
            .expect("GET");
        let head = client
            .head(format!("{}{path}", api.url()))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path}"
        );
        assert!(head.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
    let head = client
        .head(format!("{}/api/v1/nope", api.url()))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 404);
    api.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_advice_for_its_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_alone(dir.path(), coldchain_api::routes::BODY_TIMEOUT).await;
    let base = api.url();
    let host = base.trim_start_matches("http://").to_string();
    let ten_mb = 10 * 1024 * 1024;
    for path in ["/api/v1/tokens", "/api/v1/verify", "/api/v1/batches"] {
        let (status, body) = raw(
            &base,
            format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {ten_mb}\r\nConnection: close\r\n\r\n")
                .into(),
        )
        .await;
        assert_json_error(&status, &body, 413, "body_too_large");
        let message = body["message"].as_str().unwrap_or_default();
        if path == "/api/v1/batches" {
            assert!(message.contains("split the batches"), "{message}");
        } else {
            assert!(!message.contains("batches"), "{path}: {message}");
            assert!(
                message.contains(path) && message.contains("no request body"),
                "{message}"
            );
        }
    }
    api.stop().await;
}
