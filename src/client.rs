//! A Sawtooth REST API client for the command line: sign a transaction, submit
//! it in a batch, wait for the outcome, and say plainly what happened.
//!
//! Works against the embedded node or any real Sawtooth REST API.
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use coldchain_processors::signing::{
    batch_list_bytes, sign_batch, sign_transaction, Signer, TransactionSpec,
};
use serde_json::Value;

/// What became of a submitted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed {
        batch_id: String,
    },
    /// The transaction processor refused it; `reason` is its message.
    Invalid {
        batch_id: String,
        reason: String,
    },
    /// Still pending when we stopped waiting.
    Pending {
        batch_id: String,
    },
}

/// A client of one Sawtooth REST API.
#[derive(Clone)]
pub struct LedgerClient {
    http: reqwest::Client,
    base: String,
    wait: Duration,
}

impl LedgerClient {
    pub fn new(base_url: &str, wait: Duration) -> Result<LedgerClient> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url must start with http:// or https://, got {base_url:?}");
        }
        let http = reqwest::Client::builder()
            .timeout(wait + Duration::from_secs(30))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(LedgerClient { http, base, wait })
    }

    /// Signs `spec` with `signer` (also the batcher), submits it and waits for its outcome.
    pub async fn submit(&self, spec: TransactionSpec, signer: &Signer) -> Result<Outcome> {
        let transaction = sign_transaction(spec, signer, signer.public_key())?;
        let batch = sign_batch(vec![transaction], signer)?;
        let batch_id = batch.get_header_signature().to_string();
        let body = batch_list_bytes(vec![batch])?;
        self.post_batches(body).await?;
        self.wait_for(&batch_id).await
    }

    /// POSTs a serialised BatchList, retrying while the validator's queue is full.
    pub async fn post_batches(&self, body: Vec<u8>) -> Result<()> {
        let url = format!("{}/batches", self.base);
        let mut delay = Duration::from_millis(100);
        loop {
            let response = self
                .http
                .post(&url)
                .header("Content-Type", "application/octet-stream")
                .body(body.clone())
                .send()
                .await
                .with_context(|| format!("cannot reach the Sawtooth REST API at {} — is `coldchain node` running? (--url)", self.base))?;
            let status = response.status();
            if status.as_u16() == 202 || status.is_success() {
                return Ok(());
            }
            if status.as_u16() == 429 && delay < Duration::from_secs(10) {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            bail!(
                "the REST API refused the batch ({status}): {}",
                error_message(&text)
            );
        }
    }

    /// Polls `/batch_statuses` until the batch is committed or invalid, or the wait ends.
    pub async fn wait_for(&self, batch_id: &str) -> Result<Outcome> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let url = format!("{}/batch_statuses?id={batch_id}&wait=5", self.base);
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .context("cannot read batch status")?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!(
                    "batch status query failed ({status}): {}",
                    error_message(&text)
                );
            }
            let json: Value = serde_json::from_str(&text).context("batch status is not JSON")?;
            let entry = json["data"]
                .as_array()
                .and_then(|entries| entries.first())
                .ok_or_else(|| anyhow!("batch status response has no data: {text}"))?;
            match entry["status"].as_str().unwrap_or("") {
                "COMMITTED" => {
                    return Ok(Outcome::Committed {
                        batch_id: batch_id.to_string(),
                    })
                }
                "INVALID" => {
                    let reason = entry["invalid_transactions"]
                        .as_array()
                        .and_then(|list| list.first())
                        .and_then(|t| t["message"].as_str())
                        .unwrap_or("the validator gave no reason")
                        .to_string();
                    return Ok(Outcome::Invalid {
                        batch_id: batch_id.to_string(),
                        reason,
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Outcome::Pending {
                    batch_id: batch_id.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The unwrapped value at a state address, or None.
    pub async fn state(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/state/{address}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach the Sawtooth REST API at {}", self.base))?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("state query failed ({status}): {}", error_message(&text));
        }
        let json: Value = serde_json::from_str(&text).context("state response is not JSON")?;
        let encoded = json["data"].as_str().unwrap_or("");
        Ok(Some(base64_decode(encoded)?))
    }
}

/// Decodes a protobuf record read from state.
pub fn decode_record<M: protobuf::Message>(bytes: &[u8], what: &str) -> Result<M> {
    M::parse_from_bytes(bytes)
        .with_context(|| format!("the {what} record in state is not readable"))
}

fn error_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|json| json["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(300).collect())
}

/// Standard base64 decoding (the REST API's encoding of state data).
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut lookup = [255u8; 256];
    for (i, c) in ALPHABET.iter().enumerate() {
        lookup[*c as usize] = i as u8;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let value = lookup[c as usize];
        if value == 255 {
            bail!("state data is not base64 (found {:?})", c as char);
        }
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode("a$b").is_err());
    }
}
