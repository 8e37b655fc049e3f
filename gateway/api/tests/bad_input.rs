//! Hostile and malformed requests get clear 4xx JSON errors, never a 500.
mod support;

use coldchain_api::{Api, ApiConfig};
use support::http::get;

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
