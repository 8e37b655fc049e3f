//! The ledger as the gateway sees it: a Sawtooth REST API.
//!
//! `POST /batches`, `GET /batch_statuses?id=&wait=`, `GET /state/{address}`.
//! Any Sawtooth REST API will do (the embedded node or a real network).
//! Transport only: deciding what an outcome means for the queue is
//! [`crate::submission`]'s job.
use crate::config::ShipmentRange;
use base64::Engine;
use coldchain_processors::addressing::RecordKind;
use coldchain_processors::messages::coldchain::{Device, Shipment};
use protobuf::Message;
use std::time::Duration;

/// Why the REST API could not be used right now (worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("REST API {url} unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("REST API {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("REST API {url} sent something that is not a Sawtooth answer: {detail}")]
    Garbled { url: String, detail: String },
}

/// What `POST /batches` said.
#[derive(Debug, PartialEq, Eq)]
pub enum PostOutcome {
    Accepted,
    /// 429: the validator's queue is full; wait (the hint, if any) and retry.
    Busy(Option<Duration>),
    /// 400-class refusal of the batch itself (other than 429), with the API's message.
    Refused(String),
}

/// A batch's status per `/batch_statuses`.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchStatus {
    Committed,
    /// Refused transactions: (transaction id, processor message).
    Invalid(Vec<(String, String)>),
    Pending,
    Unknown,
}

/// A client for one REST API.
#[derive(Clone)]
pub struct Ledger {
    http: reqwest::Client,
    base: String,
}

impl Ledger {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Ledger, LedgerError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| LedgerError::Unreachable {
                url: base_url.to_string(),
                source,
            })?;
        Ok(Ledger {
            http,
            base: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Submits a `BatchList` body.
    pub async fn post_batches(&self, body: Vec<u8>) -> Result<PostOutcome, LedgerError> {
        let url = format!("{}/batches", self.base);
        let response = self
            .http
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|source| LedgerError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        match status {
            200..=299 => Ok(PostOutcome::Accepted),
            429 => Ok(PostOutcome::Busy(retry_after)),
            400..=499 => Ok(PostOutcome::Refused(text)),
            _ => Err(LedgerError::Status {
                url,
                status,
                body: text,
            }),
        }
    }

    /// The status of one batch, waiting up to `wait_s` seconds for it to settle.
    pub async fn batch_status(
        &self,
        batch_id: &str,
        wait_s: u64,
    ) -> Result<BatchStatus, LedgerError> {
        let url = format!("{}/batch_statuses?id={batch_id}&wait={wait_s}", self.base);
        let response =
            self.http
                .get(&url)
                .send()
                .await
                .map_err(|source| LedgerError::Unreachable {
                    url: url.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(LedgerError::Status {
                url,
                status,
                body: text,
            });
        }
        parse_batch_status(&text, batch_id).map_err(|detail| LedgerError::Garbled { url, detail })
    }

    /// The raw bytes at a state address, if anything is stored there.
    pub async fn state(&self, address: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let url = format!("{}/state/{address}", self.base);
        let response =
            self.http
                .get(&url)
                .send()
                .await
                .map_err(|source| LedgerError::Unreachable {
                    url: url.clone(),
                    source,
                })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(LedgerError::Status {
                url,
                status,
                body: text,
            });
        }
        let garbled = |detail: String| LedgerError::Garbled {
            url: url.clone(),
            detail,
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| garbled(e.to_string()))?;
        let data = json["data"]
            .as_str()
            .ok_or_else(|| garbled("no \"data\" string".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| garbled(format!("data is not base64: {e}")))?;
        Ok(Some(bytes))
    }

    /// The device record, if registered.
    pub async fn device(&self, device_id: &str) -> Result<Option<Device>, LedgerError> {
        let address = RecordKind::Device.address(device_id);
        match self.state(&address).await? {
            None => Ok(None),
            Some(bytes) => {
                Device::parse_from_bytes(&bytes)
                    .map(Some)
                    .map_err(|e| LedgerError::Garbled {
                        url: address,
                        detail: format!("not a Device record: {e}"),
                    })
            }
        }
    }

    /// The shipment's allowed temperature range, if the shipment exists.
    pub async fn shipment_range(
        &self,
        shipment_id: &str,
    ) -> Result<Option<ShipmentRange>, LedgerError> {
        let address = RecordKind::Shipment.address(shipment_id);
        match self.state(&address).await? {
            None => Ok(None),
            Some(bytes) => {
                let shipment =
                    Shipment::parse_from_bytes(&bytes).map_err(|e| LedgerError::Garbled {
                        url: address,
                        detail: format!("not a Shipment record: {e}"),
                    })?;
                let profile = shipment.get_profile();
                Ok(Some(ShipmentRange {
                    min_cdeg: profile.get_min_cdeg(),
                    max_cdeg: profile.get_max_cdeg(),
                }))
            }
        }
    }
}

/// Reads one batch's entry from a `/batch_statuses` JSON answer.
pub fn parse_batch_status(text: &str, batch_id: &str) -> Result<BatchStatus, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let entries = json["data"].as_array().ok_or("no \"data\" array")?;
    let entry = entries
        .iter()
        .find(|e| e["id"].as_str() == Some(batch_id))
        .ok_or_else(|| format!("batch {batch_id} missing from the answer"))?;
    match entry["status"].as_str() {
        Some("COMMITTED") => Ok(BatchStatus::Committed),
        Some("PENDING") => Ok(BatchStatus::Pending),
        Some("UNKNOWN") => Ok(BatchStatus::Unknown),
        Some("INVALID") => {
            let refused = entry["invalid_transactions"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|t| {
                            (
                                t["id"].as_str().unwrap_or_default().to_string(),
                                t["message"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(BatchStatus::Invalid(refused))
        }
        other => Err(format!("unexpected status {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_carries_transaction_messages() {
        let text = r#"{"data":[{"id":"b1","status":"INVALID","invalid_transactions":[{"id":"t1","message":"readings already recorded: 5 <= 9","extended_data":""}]}],"link":"x"}"#;
        assert_eq!(
            parse_batch_status(text, "b1"),
            Ok(BatchStatus::Invalid(vec![(
                "t1".into(),
                "readings already recorded: 5 <= 9".into()
            )]))
        );
    }

    #[test]
    fn committed_pending_unknown_are_recognised() {
        for (word, status) in [
            ("COMMITTED", BatchStatus::Committed),
            ("PENDING", BatchStatus::Pending),
            ("UNKNOWN", BatchStatus::Unknown),
        ] {
            let text =
                format!(r#"{{"data":[{{"id":"b","status":"{word}","invalid_transactions":[]}}]}}"#);
            assert_eq!(parse_batch_status(&text, "b"), Ok(status));
        }
        assert!(parse_batch_status(r#"{"data":[]}"#, "b").is_err());
    }
}
