//! How current the index is, for people and machines: `/api/v1/status`
//! (index, chain head, follower), `/health` (200 when verdicts can be given,
//! 503 with why not), `/metrics` (Prometheus text), and the gate the
//! verification endpoints pass through ([`refuse_unless_fresh`]).
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::{json_answer, respond, Answer, AppState};
use crate::freshness::Freshness;

/// Seconds a refused caller is told to wait before asking again.
const RETRY_AFTER_S: u64 = 5;

/// The freshness of the index whose newest block is `index_head`.
pub(crate) fn assess(state: &AppState, index_head: Option<u64>) -> Freshness {
    state
        .status
        .assess(state.following, index_head, &state.limits, Instant::now())
}

/// The fields saying how far behind the index is (shared by the 503
/// verification answer and `/health`).
fn lag_fields(freshness: &Freshness) -> serde_json::Map<String, serde_json::Value> {
    let fields = json!({
        "index_head": freshness.index_head,
        "chain_head_num": freshness.chain_head_num,
        "lag_blocks": freshness.lag_blocks,
        "lag_seconds": round_ms(freshness.lag_seconds),
        "seconds_since_contact": freshness.seconds_since_contact.map(round_ms),
    });
    fields.as_object().cloned().unwrap_or_default()
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// None when a verdict may be given; otherwise the 503 `cannot_verify_now`
/// answer (counted in `coldchain_api_verify_refused_total`).
pub(crate) fn refuse_unless_fresh(state: &AppState, freshness: &Freshness) -> Option<Answer> {
    if freshness.verdicts_allowed() {
        return None;
    }
    state.status.verify_refused();
    let (kind, reason) = freshness
        .stale
        .as_ref()
        .map(|(kind, reason)| (kind.as_str(), reason.clone()))
        .unwrap_or_default();
    let mut body = json!({
        "error": "cannot_verify_now",
        "message": freshness.refusal_message(),
        "state": kind,
        "reason": reason,
        "retry_after_s": RETRY_AFTER_S,
    });
    if let Some(object) = body.as_object_mut() {
        object.extend(lag_fields(freshness));
    }
    Some(json_answer(503, &body).map(|mut response| {
        if let Ok(value) = RETRY_AFTER_S.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }))
}

/// `GET /health`: 200 `ok` when verdicts can be given, else 503 with the
/// state (`behind`, `stuck`, `no_contact`, `empty`) and the reason.
pub(crate) async fn health(state: &AppState) -> Answer {
    let index_head = state.index.head().await?.map(|b| b.block_num);
    let freshness = assess(state, index_head);
    let (status, reason) = match (&freshness.stale, freshness.verdicts_allowed()) {
        (Some((kind, reason)), false) => (kind.as_str(), Some(reason.clone())),
        _ => ("ok", None),
    };
    let mut body = json!({
        "status": status,
        "reason": reason,
        "following": freshness.following,
        "stuck_block": freshness.stuck,
        "max_lag_blocks": state.limits.max_lag_blocks,
        "max_lag_seconds": state.limits.max_lag.as_secs_f64(),
    });
    if let Some(object) = body.as_object_mut() {
        object.extend(lag_fields(&freshness));
    }
    json_answer(if status == "ok" { 200 } else { 503 }, &body)
}

/// `GET /metrics`: Prometheus text exposition (version 0.0.4).
pub(crate) async fn metrics(state: &AppState) -> Answer {
    let index_head = state.index.head().await?.map(|b| b.block_num);
    let f = assess(state, index_head);
    let status = &state.status;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        // An unknown value (no chain head seen yet) has no sample.
        if let Some(value) = value {
            let _ = writeln!(text, "{name} {value}");
        }
    };
    let flag = |b: bool| Some(if b { 1.0 } else { 0.0 });
    metric(
        "coldchain_api_index_head_block",
        "gauge",
        "Newest block number in the index.",
        f.index_head.map(|n| n as f64),
    );
    metric(
        "coldchain_api_chain_head_block",
        "gauge",
        "Newest block number the node announced or served as its chain head.",
        f.chain_head_num.map(|n| n as f64),
    );
    metric(
        "coldchain_api_index_lag_blocks",
        "gauge",
        "Blocks between the index head and the chain head.",
        f.lag_blocks.map(|n| n as f64),
    );
    metric(
        "coldchain_api_index_lag_seconds",
        "gauge",
        "Seconds since the oldest block the index misses was first seen (0 when level).",
        Some(round_ms(f.lag_seconds)),
    );
    metric(
        "coldchain_api_follower_connected",
        "gauge",
        "1 while the chain follower is subscribed to the node's events.",
        flag(status.connected.load(Ordering::Relaxed)),
    );
    metric(
        "coldchain_api_follower_contact_age_seconds",
        "gauge",
        "Seconds since the chain follower last heard from the node.",
        f.seconds_since_contact.map(round_ms),
    );
    metric(
        "coldchain_api_follower_stuck",
        "gauge",
        "1 when the chain follower failed on the same block 3 times or more in a row (alarm).",
        flag(f.stuck.is_some()),
    );
    metric(
        "coldchain_api_follower_stuck_block",
        "gauge",
        "The block number the chain follower is stuck on.",
        f.stuck.as_ref().map(|s| s.block_num as f64),
    );
    metric(
        "coldchain_api_follower_failures_total",
        "counter",
        "Chain follower failures (each one reconnects with backoff).",
        Some(status.failures_total() as f64),
    );
    metric(
        "coldchain_api_fresh",
        "gauge",
        "1 when verification gives verdicts (the index is current, or --no-follow).",
        flag(f.verdicts_allowed()),
    );
    metric(
        "coldchain_api_verify_refused_total",
        "counter",
        "Verifications answered 503 cannot_verify_now instead of a verdict.",
        Some(status.verify_refused_total() as f64),
    );
    Ok(respond(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}

/// `GET /api/v1/status`: index head, chain head (asked from the node),
/// lag, follower state, and whether the index is known to be current.
pub(crate) async fn status(state: &AppState) -> Answer {
    let head = state.index.head().await?;
    let announced = state.status.chain_head();
    let chain_head = match state.node.head_num().await {
        Ok(num) => num,
        Err(_) => announced,
    };
    let index_num = head.as_ref().map(|h| h.block_num);
    let lag = match (chain_head, index_num) {
        (Some(c), Some(i)) => Some(c.saturating_sub(i)),
        (Some(c), None) => Some(c + 1),
        _ => None,
    };
    let now = Instant::now();
    if let Some(chain_head) = chain_head {
        state.status.observe(chain_head, index_num, now);
    }
    let lag_seconds = lag.map(|lag| {
        if lag == 0 {
            0.0
        } else {
            round_ms(state.status.lag_seconds(index_num, now))
        }
    });
    let last_error = state
        .status
        .last_error
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let freshness = assess(state, index_num);
    json_answer(
        200,
        &json!({
            "index_head": head,
            "chain_head_num": chain_head,
            "lag_blocks": lag,
            "lag_seconds": lag_seconds,
            "index_rebuilt": state.index.rebuild_notice(),
            "follower_connected": state.status.connected.load(Ordering::Relaxed),
            "follower_last_error": last_error,
            "fresh": freshness.fresh(),
            "stale_reason": freshness.stale_reason(),
        }),
    )
}
