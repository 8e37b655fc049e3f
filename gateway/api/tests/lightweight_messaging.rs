//! GS1 Lightweight Messaging verification requests (what a DSCSA verification
//! router sends a responder) end to end through the HTTP API, on an indexed
//! chain: every verdict mapped to the standard's answer, the correlation id
//! echoed, no `verified: true` while the index is not current, and bad
//! requests answered with a JSON error that names what was wrong.
mod support;

use coldchain_api::chain::{ingest, Ingested};
use coldchain_api::{Api, ApiConfig, ApiHandle};
use serde_json::Value;
use support::scenario::{self, site, GTIN};
use support::{drop_postgres_schema, postgres_url, Ledger};

/// The requestor: a pharmacy's GLN (valid check digit).
const REQ_GLN: &str = "0614141000005";
const CORR: &str = "21f11c2b-4b0a-4b21-9a7b-5b2bd7e2f8a1";

fn config(index_url: &str, rest_url: &str, follow: bool) -> ApiConfig {
    ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: rest_url.into(),
        component: rest_url.replace("http://", "tcp://"),
        index_url: index_url.into(),
        follow,
    }
}

async fn serve(index_url: &str, ledger: &Ledger) -> ApiHandle {
    let api = Api::start(config(index_url, "http://127.0.0.1:9", false))
        .await
        .expect("API starts");
    for update in &ledger.blocks {
        let outcome = ingest(api.index().as_ref(), &ledger.lookup(), update.clone())
            .await
            .expect("ingested");
        assert_eq!(outcome, Ingested::Applied);
    }
    api
}

struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("API answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, allow) = (header("content-type").unwrap_or_default(), header("allow"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Answer {
        status,
        content_type,
        allow,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get(base: &str, path_and_query: &str) -> Answer {
    send(reqwest::Client::new().get(format!("{base}{path_and_query}"))).await
}

/// The standard's request URI for a pack: Digital Link path, printed expiry
/// (AI 17), linkType, context, requestor GLN and correlation UUID.
fn request_uri(lot: &str, serial: &str, yymmdd: &str) -> String {
    format!(
        "/vrs/01/{GTIN}/10/{lot}/21/{serial}?17={yymmdd}&linkType=verificationService\
         &context=dscsaSaleableReturn&reqGLN={REQ_GLN}&corrUUID={CORR}"
    )
}

/// (verified, verificationFailureReason, additionalInfo, our verdict).
fn standard_answer(answer: &Answer) -> (bool, Option<&str>, Option<&str>, &str) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json");
    let data = &answer.body["data"];
    (
        data["verified"].as_bool().expect("verified is a boolean"),
        data["verificationFailureReason"].as_str(),
        data["additionalInfo"].as_str(),
        answer.body["coldchain"]["verdict"]
            .as_str()
            .unwrap_or_default(),
    )
}

async fn every_verdict_is_answered_as_the_standard_says(index_url: &str) {
    let mut ledger = Ledger::new();
    scenario::full_story(&mut ledger);
    let api = serve(index_url, &ledger).await;
    let base = api.url();

    // A pack in specification: verified, with the request's correlation id,
    // the maker as responder and a UTC timestamp with milliseconds.
    let answer = get(&base, &request_uri("L-OK", "L-OK-S1", "301231")).await;
    assert_eq!(
        standard_answer(&answer),
        (true, None, None, "authentic_in_spec")
    );
    let body = &answer.body;
    assert_eq!(body["corrUUID"], CORR, "{body}");
    assert_eq!(body["responderGLN"], site("maker"), "{body}");
    let stamp = body["verificationTimestamp"].as_str().expect("timestamp");
    assert_eq!((stamp.len(), &stamp[10..11], &stamp[23..]), (24, "T", "Z"));
    assert_eq!(body["coldchain"]["reqGLN"], REQ_GLN);
    assert!(
        body["coldchain"]["as_of_block"]["block_num"].is_u64(),
        "{body}"
    );
    assert!(
        body["data"].as_object().is_some_and(|d| d.len() == 1),
        "a verified answer carries no failure reason: {body}"
    );

    // The Digital Link 1.0 short names, and no corrUUID: one is assigned.
    let answer = get(
        &base,
        &format!("/vrs/gtin/{GTIN}/lot/L-OK/ser/L-OK-S1?exp=301231&reqGLN={REQ_GLN}"),
    )
    .await;
    assert!(standard_answer(&answer).0, "{}", answer.body);
    let assigned = answer.body["corrUUID"].as_str().expect("corrUUID");
    assert!(assigned.len() == 36 && assigned != CORR, "{assigned}");

    // Every other verdict: not verified, with the standard's codes, and our
    // reason (cold chain, recall reason, …) beside them.
    for (lot, serial, yymmdd, expected) in [
        (
            "L-HOT",
            "L-HOT-S1",
            "301231",
            (
                false,
                Some("Not_for_re-distribution"),
                Some("Suspect"),
                "compromised",
            ),
        ),
        (
            "L-RECALL",
            "L-RECALL-S1",
            "301231",
            (
                false,
                Some("Manufacturer_policy"),
                Some("Recalled"),
                "recalled",
            ),
        ),
        (
            "L-QUAR",
            "L-QUAR-S1",
            "301231",
            (
                false,
                Some("Not_for_re-distribution"),
                Some("Suspect"),
                "quarantined",
            ),
        ),
        (
            "L-EXP",
            "L-EXP-S1",
            "240101",
            (
                false,
                Some("Manufacturer_policy"),
                Some("Expired"),
                "expired",
            ),
        ),
        (
            "L-OK",
            "L-OK-S2",
            "301231",
            (
                false,
                Some("Not_for_re-distribution"),
                Some("Suspect"),
                "already_dispensed",
            ),
        ),
        // Identifiers that do not match the ledger: unknown, by what differs.
        (
            "L-OK",
            "L-OK-S9",
            "301231",
            (false, Some("No_match_GTIN_Serial"), None, "unknown"),
        ),
        (
            "L-OK",
            "L-OK-S1",
            "301230",
            (false, Some("No_match_GTIN_Serial_Expiry"), None, "unknown"),
        ),
        // S2 of L-OK has a pack record (it was dispensed): asked under
        // another lot, the lot (and then the expiry) is what differs.
        (
            "L-HOT",
            "L-OK-S2",
            "301231",
            (false, Some("No_match_GTIN_Serial_Lot"), None, "unknown"),
        ),
        (
            "L-HOT",
            "L-OK-S2",
            "301230",
            (
                false,
                Some("No_match_GTIN_Serial_Lot_Expiry"),
                None,
                "unknown",
            ),
        ),
    ] {
        let answer = get(&base, &request_uri(lot, serial, yymmdd)).await;
        assert_eq!(
            standard_answer(&answer),
            expected,
            "{lot}/{serial}: {}",
            answer.body
        );
        assert_eq!(answer.body["corrUUID"], CORR);
        let reasons = answer.body["coldchain"]["reasons"]
            .as_array()
            .expect("reasons");
        assert!(!reasons.is_empty(), "{}", answer.body);
    }
    let hot = get(&base, &request_uri("L-HOT", "L-HOT-S1", "301231")).await;
    assert!(
        hot.body["coldchain"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("cold chain") || r.contains("compromised")),
        "{}",
        hot.body
    );
    let recalled = get(&base, &request_uri("L-RECALL", "L-RECALL-S1", "301231")).await;
    assert!(
        recalled.body["coldchain"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("contamination found")),
        "{}",
        recalled.body
    );
    // Nothing of this GTIN and serial on the ledger: no responder to name.
    let answer = get(&base, &request_uri("L-NONE", "X1", "301231")).await;
    assert_eq!(
        standard_answer(&answer),
        (false, Some("No_match_GTIN_Serial"), None, "unknown")
    );
    assert!(answer.body.get("responderGLN").is_none(), "{}", answer.body);

    // Our own verdict API is unchanged.
    let (status, verdict) =
        support::http::get(&base, &format!("/01/{GTIN}/10/L-OK/21/L-OK-S1")).await;
    assert_eq!(
        (status, verdict["verdict"].as_str()),
        (200, Some("authentic_in_spec"))
    );
    assert!(verdict.get("data").is_none(), "{verdict}");

    bad_requests_get_a_clear_json_error(&base).await;
    api.stop().await;

    // The same index behind an API whose follower cannot reach the node:
    // 503 cannot_verify_now, never an answer with `verified`.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let stale = Api::start(config(
        index_url,
        &format!("http://127.0.0.1:{closed}"),
        true,
    ))
    .await
    .expect("API starts");
    let answer = get(&stale.url(), &request_uri("L-OK", "L-OK-S1", "301231")).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body["error"], "cannot_verify_now", "{}", answer.body);
    assert!(answer.body.get("data").is_none(), "{}", answer.body);
    stale.stop().await;
}

async fn bad_requests_get_a_clear_json_error(base: &str) {
    let ok = request_uri("L-OK", "L-OK-S1", "301231");
    let refused = |answer: &Answer, status: u16, code: &str| {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(answer.body["error"], code, "{}", answer.body);
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| m.len() > 20),
            "{}",
            answer.body
        );
    };
    // A GTIN whose check digit is wrong (…0003 → …0004).
    let bad_gtin = ok.replace(GTIN, "09501101530004");
    refused(&get(base, &bad_gtin).await, 400, "bad_gtin");
    // Missing parts of the DSCSA product identifier, and of the request.
    refused(
        &get(
            base,
            &format!("/vrs/01/{GTIN}/21/L-OK-S1?17=301231&reqGLN={REQ_GLN}"),
        )
        .await,
        400,
        "bad_verification_request",
    );
    refused(
        &get(base, &ok.replace("17=301231&", "")).await,
        400,
        "missing_expiry",
    );
    refused(
        &get(base, &ok.replace(&format!("&reqGLN={REQ_GLN}"), "")).await,
        400,
        "missing_requestor_gln",
    );
    refused(
        &get(base, &ok.replace(REQ_GLN, "0614141000006")).await,
        400,
        "bad_requestor_gln",
    );
    refused(
        &get(base, &ok.replace(CORR, "not-a-uuid")).await,
        400,
        "bad_correlation_id",
    );
    refused(
        &get(base, &ok.replace("17=301231", "17=301331")).await,
        400,
        "bad_expiry",
    );
    refused(
        &get(base, &ok.replace("verificationService", "pip")).await,
        400,
        "bad_link_type",
    );
    // The standard's request is a GET: a JSON body POSTed (well formed or
    // not) is another method, 405 with Allow.
    for body in [
        format!("{{\"gtin\":\"{GTIN}\",\"lot\":\"L-OK\",\"serialNumber\":\"L-OK-S1\"}}"),
        "{\"gtin\": ".to_string(),
    ] {
        let answer = send(
            reqwest::Client::new()
                .post(format!("{base}{ok}"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        refused(&answer, 405, "method_not_allowed");
        assert_eq!(answer.allow.as_deref(), Some("GET, HEAD"));
    }
    // An Accept that admits no JSON.
    let answer = send(
        reqwest::Client::new()
            .get(format!("{base}{ok}"))
            .header("accept", "application/xml"),
    )
    .await;
    refused(&answer, 406, "not_acceptable");
    // Oversized: a query string over 2 KiB, a body over 8 MiB.
    let long = format!("{ok}&padding={}", "x".repeat(3000));
    refused(&get(base, &long).await, 400, "query_too_long");
    let answer = send(
        reqwest::Client::new()
            .get(format!("{base}{ok}"))
            .body(vec![b' '; 9 * 1024 * 1024]),
    )
    .await;
    refused(&answer, 413, "body_too_large");
}

#[tokio::test]
async fn sqlite_every_verdict_is_answered_as_the_standard_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_verdict_is_answered_as_the_standard_says(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_every_verdict_is_answered_as_the_standard_says() {
    drop_postgres_schema("lightweight_messaging").await;
    every_verdict_is_answered_as_the_standard_says(&postgres_url("lightweight_messaging")).await;
    drop_postgres_schema("lightweight_messaging").await;
}
