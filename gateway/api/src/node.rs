//! The node's Sawtooth REST API as the API uses it: blocks (for readings
//! payloads and fork checks), the chain head (for lag) and batch submission.
use std::time::Duration;

use serde_json::Value;

use crate::chain::{ChainLookup, FollowError, LookupFuture};

/// A client of the node's REST API.
#[derive(Clone, Debug)]
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
}

impl NodeClient {
    /// `base` like `http://127.0.0.1:8008`.
    pub fn new(base: &str) -> Result<NodeClient, FollowError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| FollowError::Rest {
                url: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(NodeClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn error(&self, path: &str, message: impl ToString) -> FollowError {
        FollowError::Rest {
            url: format!("{}{path}", self.base),
            message: message.to_string(),
        }
    }

    async fn get_json(&self, path: &str) -> Result<Option<Value>, FollowError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| self.error(path, e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.error(path, format!("HTTP {}", response.status())));
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| self.error(path, e))
    }

    /// `GET /blocks/{id}` → the block's `data`, None when not on the chain.
    pub async fn block(&self, block_id: &str) -> Result<Option<Value>, FollowError> {
        if !block_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .get_json(&format!("/blocks/{block_id}"))
            .await?
            .and_then(|mut v| v.get_mut("data").map(Value::take)))
    }

    /// `GET /transactions/{id}` → the transaction's payload bytes (None when the node does not have it).
    pub async fn transaction_payload(&self, txn_id: &str) -> Result<Option<Vec<u8>>, FollowError> {
        use base64::Engine;
        if txn_id.is_empty() || !txn_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let path = format!("/transactions/{txn_id}");
        let Some(body) = self.get_json(&path).await? else {
            return Ok(None);
        };
        let payload = body
            .get("data")
            .and_then(|d| d.get("payload"))
            .and_then(Value::as_str)
            .ok_or_else(|| self.error(&path, "answer has no data.payload"))?;
        base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(Some)
            .map_err(|e| self.error(&path, format!("payload is not base64: {e}")))
    }

    /// `POST /receipts` (JSON array of ids) → which addresses each transaction changed.
    pub async fn receipts(&self, ids: &[String]) -> Result<crate::chain::Receipts, FollowError> {
        let response = self
            .http
            .post(format!("{}/receipts", self.base))
            .json(ids)
            .send()
            .await
            .map_err(|e| self.error("/receipts", e))?;
        if !response.status().is_success() {
            return Err(self.error("/receipts", format!("HTTP {}", response.status())));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| self.error("/receipts", e))?;
        let receipts = crate::chain::parse_receipts(body.get("data").unwrap_or(&Value::Null));
        if let Some(missing) = ids.iter().find(|id| !receipts.contains_key(*id)) {
            return Err(self.error(
                "/receipts",
                format!("no receipt for committed transaction {missing}"),
            ));
        }
        Ok(receipts)
    }

    /// The chain head's block number (None before genesis).
    pub async fn head_num(&self) -> Result<Option<u64>, FollowError> {
        let page = self.get_json("/blocks?limit=1").await?;
        let num = page
            .as_ref()
            .and_then(|p| p.get("data"))
            .and_then(|d| d.get(0))
            .and_then(|b| b.get("header"))
            .and_then(|h| h.get("block_num"))
            .and_then(number);
        Ok(num)
    }

    /// `POST /batches` with a serialised BatchList; returns HTTP status and JSON body.
    pub async fn submit(&self, batch_list: bytes::Bytes) -> Result<(u16, Value), FollowError> {
        let response = self
            .http
            .post(format!("{}/batches", self.base))
            .header("content-type", "application/octet-stream")
            .body(batch_list)
            .send()
            .await
            .map_err(|e| self.error("/batches", e))?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// `GET /batch_statuses?id=…&wait=…`.
    pub async fn batch_statuses(&self, ids: &str, wait_s: u64) -> Result<Value, FollowError> {
        let path = format!("/batch_statuses?id={ids}&wait={wait_s}");
        Ok(self.get_json(&path).await?.unwrap_or(Value::Null))
    }
}

/// A JSON number or a decimal string (Sawtooth's REST API sends uint64 as strings).
pub fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

impl ChainLookup for NodeClient {
    fn is_on_chain<'a>(&'a self, block_id: &'a str) -> LookupFuture<'a> {
        Box::pin(async move { Ok(self.block(block_id).await?.is_some()) })
    }
}
