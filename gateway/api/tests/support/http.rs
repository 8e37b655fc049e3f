//! HTTP helpers for API tests: plain and partner-signed requests.
use coldchain_api::access::signed_message;
use coldchain_processors::signing::Signer;

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// GET `path_and_query` without credentials: (status, body).
pub async fn get(base: &str, path_and_query: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}{path_and_query}"))
        .await
        .expect("API answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// GET signed with a partner key.
pub async fn signed_get(
    base: &str,
    path_and_query: &str,
    signer: &Signer,
) -> (u16, serde_json::Value) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let timestamp = now_s().to_string();
    let signature = signer.sign(signed_message("GET", path, query, &timestamp).as_bytes());
    let response = reqwest::Client::new()
        .get(format!("{base}{path_and_query}"))
        .header("X-Coldchain-Key", signer.public_key())
        .header("X-Coldchain-Timestamp", timestamp)
        .header("X-Coldchain-Signature", signature)
        .send()
        .await
        .expect("API answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// A bearer token for `signer` from POST /api/v1/tokens.
pub async fn token_for(base: &str, signer: &Signer) -> String {
    let timestamp = now_s().to_string();
    let signature =
        signer.sign(signed_message("POST", "/api/v1/tokens", "label=test", &timestamp).as_bytes());
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/tokens?label=test"))
        .header("X-Coldchain-Key", signer.public_key())
        .header("X-Coldchain-Timestamp", timestamp)
        .header("X-Coldchain-Signature", signature)
        .send()
        .await
        .expect("API answers");
    assert_eq!(response.status().as_u16(), 201, "token created");
    let body: serde_json::Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

/// Waits until `/health` answers 200 (verification gives verdicts: the index
/// is current), panicking with the last answer after `seconds`.
pub async fn wait_until_fresh(base: &str, seconds: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let (status, body) = get(base, "/health").await;
        if status == 200 {
            return;
        }
        if std::time::Instant::now() >= deadline {
            panic!("the API did not become fresh within {seconds} s: {status} {body}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `path_and_query` until `done` accepts the answer, panicking with the
/// last answer after `seconds`.
pub async fn wait_for(
    base: &str,
    path_and_query: &str,
    seconds: u64,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let (status, body) = get(base, path_and_query).await;
        if done(status, &body) {
            return (status, body);
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "{path_and_query} never answered as expected within {seconds} s: {status} {body}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
