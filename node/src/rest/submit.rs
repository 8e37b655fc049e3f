//! `POST /batches` and `/batch_statuses`: decode, validate and queue batches,
//! and report what became of them (waiting with `wait=` if asked).
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::{blocking, id_list, json::b64, Request, RestContext};
use crate::intake::{BatchStatus, Intake};
use crate::store;
use crate::validation::{decode_batch_list, validate_batches, KnownIds, Rejection};

/// Longest `wait` honoured, in seconds (Sawtooth's default timeout too).
const MAX_WAIT_SECS: f64 = 300.0;

struct Known<'a> {
    intake: &'a Intake,
    conn: &'a rusqlite::Connection,
}

impl KnownIds for Known<'_> {
    fn transaction_committed(&self, id: &str) -> bool {
        // A lookup failure must not let a duplicate through: the publisher
        // checks again before execution, so "not known" is safe here.
        store::has_transaction(self.conn, id).unwrap_or(false)
    }
    fn transaction_pending(&self, id: &str) -> bool {
        self.intake.transaction_pending(id)
    }
}

pub async fn post_batches(
    context: Arc<RestContext>,
    request: Request,
) -> Result<Response, ApiError> {
    if request.content_type() != "application/octet-stream" {
        return Err(ApiError::wrong_submit_type());
    }
    let link_base = format!("{}/batch_statuses?id=", request.base_url());
    let body = request.body;
    let ids = blocking(move || {
        let batches = decode_batch_list(&body).map_err(|e| match e {
            Rejection::Empty => ApiError::no_batches(),
            Rejection::Undecodable(detail) => ApiError::bad_protobuf(detail),
            other => ApiError::batches_invalid(other.to_string()),
        })?;
        let ids: Vec<String> = batches
            .iter()
            .map(|b| b.get_header_signature().to_string())
            .collect();
        let intake = context.intake.clone();
        let registry = context.registry.clone();
        let result = context.chain.read(|conn| {
            // Resubmitting a batch that is already pending or committed is
            // harmless and answered like a fresh submission.
            let mut fresh = Vec::new();
            for batch in batches {
                let id = batch.get_header_signature();
                if !(intake.batch_pending(id) || store::has_batch(conn, id)?) {
                    fresh.push(batch);
                }
            }
            if fresh.is_empty() {
                return Ok(Ok(Vec::new()));
            }
            Ok(validate_batches(
                fresh,
                &registry,
                &Known {
                    intake: &intake,
                    conn,
                },
            ))
        });
        let valid = result
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::batches_invalid(e.to_string()))?;
        if intake.is_closed() {
            return Err(ApiError::shutting_down());
        }
        if !valid.is_empty() {
            intake.submit(valid).map_err(|_| ApiError::queue_full())?;
        }
        Ok(ids)
    })
    .await?;
    let body = json!({"link": format!("{link_base}{}", ids.join(","))});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response())
}

fn status_json(id: &str, status: &BatchStatus) -> Value {
    let (name, invalid) = match status {
        BatchStatus::Committed => ("COMMITTED", Vec::new()),
        BatchStatus::Pending => ("PENDING", Vec::new()),
        BatchStatus::Unknown => ("UNKNOWN", Vec::new()),
        BatchStatus::Invalid(txns) => (
            "INVALID",
            txns.iter()
                .map(|t| json!({"id": t.id, "message": t.message, "extended_data": b64(&t.extended_data)}))
                .collect(),
        ),
    };
    super::json::drop_empty_strings(
        json!({"id": id, "status": name, "invalid_transactions": invalid}),
    )
}

fn parse_wait(request: &Request) -> Result<Option<Duration>, ApiError> {
    match request.query.get("wait") {
        None => Ok(None),
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("true") => {
            Ok(Some(Duration::from_secs_f64(MAX_WAIT_SECS)))
        }
        Some(v) => match v.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                Ok(Some(Duration::from_secs_f64(secs.min(MAX_WAIT_SECS))))
            }
            _ => Err(ApiError::wait_invalid(v)),
        },
    }
}

fn ids_from_post(request: &Request) -> Result<Vec<String>, ApiError> {
    if request.content_type() != "application/json" {
        return Err(ApiError::wrong_status_type());
    }
    let ids: Vec<String> =
        serde_json::from_slice(&request.body).map_err(|_| ApiError::status_body_invalid())?;
    if ids.is_empty() {
        return Err(ApiError::status_body_invalid());
    }
    Ok(ids)
}

pub async fn batch_statuses(
    context: Arc<RestContext>,
    request: Request,
) -> Result<Response, ApiError> {
    let ids = if request.method == warp::http::Method::POST {
        ids_from_post(&request)?
    } else {
        let ids = id_list(request.query.get("id"));
        if ids.is_empty() {
            return Err(ApiError::status_id_missing());
        }
        ids
    };
    // As Sawtooth: every id must be a 128-hex id (code 60).
    if let Some(bad) = ids.iter().find(|id| !super::is_id(id)) {
        return Err(ApiError::invalid_id(bad));
    }
    let wait = parse_wait(&request)?;
    let deadline = wait.map(|w| Instant::now() + w);
    let mut settled = context.intake.watch_settled();
    loop {
        settled.borrow_and_update();
        let ctx = context.clone();
        let query_ids = ids.clone();
        let statuses = blocking(move || {
            ctx.chain
                .read(|conn| {
                    query_ids
                        .iter()
                        .map(|id| {
                            let mut failure = None;
                            let status = ctx.intake.status(id, || {
                                store::has_batch(conn, id).unwrap_or_else(|e| {
                                    failure = Some(e);
                                    false
                                })
                            });
                            match failure {
                                Some(e) => Err(e),
                                None => Ok(status),
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(ApiError::internal)
        })
        .await?;
        let any_pending = statuses.contains(&BatchStatus::Pending);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match remaining {
            Some(left) if any_pending && !left.is_zero() && !context.intake.is_closed() => {
                // Woken when any batch settles; re-check then.
                let _ = tokio::time::timeout(left, settled.changed()).await;
            }
            _ => {
                let data: Vec<Value> = ids
                    .iter()
                    .zip(&statuses)
                    .map(|(id, s)| status_json(id, s))
                    .collect();
                // Sawtooth answers a POST without `link`.
                let body = if request.method == warp::http::Method::POST {
                    json!({ "data": data })
                } else {
                    json!({"data": data, "link": request.link()})
                };
                return Ok(warp::reply::json(&body).into_response());
            }
        }
    }
}
