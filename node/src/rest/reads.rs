//! Read endpoints: blocks, batches, transactions, state and receipts, with
//! Sawtooth's `head`, `start`/`limit` paging (default 100, max 1000,
//! newest first for chain items, address order for state) and
//! `paging.next` links.
use std::sync::Arc;

use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::{blocking, id_list, is_id, json, Request, RestContext};
use crate::store::{self, BlockSummary, StoreError};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn internal(e: StoreError) -> ApiError {
    ApiError::internal(e)
}

fn limit(request: &Request) -> Result<usize, ApiError> {
    match request.query.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::paging_invalid(format!("limit={v:?}"))),
        },
    }
}

/// The block the request reads at: `head=` if given (must exist), else the chain head.
fn resolve_head(conn: &rusqlite::Connection, request: &Request) -> Result<BlockSummary, ApiError> {
    match request.query.get("head") {
        Some(head) => {
            if !is_id(head) {
                return Err(ApiError::invalid_id(head));
            }
            store::block_summary(conn, head)
                .map_err(internal)?
                .ok_or_else(|| ApiError::head_not_found(head))
        }
        None => store::head(conn)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("the chain has no genesis block yet")),
    }
}

/// `paging` object and the URL of the next page.
fn paging(request: &Request, limit: usize, next_position: Option<String>) -> Value {
    let mut paging = Map::new();
    paging.insert("limit".into(), json!(limit));
    if let Some(start) = request.query.get("start") {
        paging.insert("start".into(), json!(start));
    }
    if let Some(next) = next_position {
        let mut pairs: Vec<(String, String)> = request
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "start")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("start".into(), next.clone()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        paging.insert(
            "next".into(),
            json!(format!("{}{}?{query}", request.base_url(), request.path)),
        );
        paging.insert("next_position".into(), json!(next));
    }
    Value::Object(paging)
}

fn list_reply(request: &Request, head: &str, data: Vec<Value>, paging: Value) -> Response {
    warp::reply::json(
        &json!({"data": data, "head": head, "link": request.link(), "paging": paging}),
    )
    .into_response()
}

fn one_reply(request: &Request, data: Value) -> Response {
    warp::reply::json(&json!({"data": data, "link": request.link()})).into_response()
}

pub async fn list_blocks(
    context: Arc<RestContext>,
    request: Request,
) -> Result<Response, ApiError> {
    blocking(move || {
        let limit = limit(&request)?;
        context
            .chain
            .read(|conn| Ok(blocks_page(conn, &request, limit)))
            .map_err(internal)?
    })
    .await
}

fn blocks_page(
    conn: &rusqlite::Connection,
    request: &Request,
    limit: usize,
) -> Result<Response, ApiError> {
    let head = resolve_head(conn, request)?;
    let from = match request.query.get("start") {
        None => head.block_num,
        Some(start) => {
            let summary = if is_id(start) {
                store::block_summary(conn, start).map_err(internal)?
            } else {
                None
            };
            match summary {
                Some(s) if s.block_num <= head.block_num => s.block_num,
                _ => {
                    return Err(ApiError::paging_invalid(format!(
                        "start={start:?} is not a block of this chain"
                    )))
                }
            }
        }
    };
    let mut nums = store::block_nums_down_from(conn, from, limit + 1).map_err(internal)?;
    let next = if nums.len() > limit { nums.pop() } else { None };
    let mut data = Vec::with_capacity(nums.len());
    for num in nums {
        if let Some((block, _)) = store::block_by_num(conn, num).map_err(internal)? {
            data.push(json::block(&block));
        }
    }
    let next_position = match next {
        Some(num) => store::block_by_num(conn, num)
            .map_err(internal)?
            .map(|(b, _)| b.get_header_signature().to_string()),
        None => None,
    };
    Ok(list_reply(
        request,
        &head.block_id,
        data,
        paging(request, limit, next_position),
    ))
}

pub async fn get_block(
    context: Arc<RestContext>,
    request: Request,
    id: String,
) -> Result<Response, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::invalid_id(&id));
    }
    blocking(move || {
        let block = context
            .chain
            .read(|conn| match store::block_summary(conn, &id)? {
                Some(s) => Ok(store::block_by_num(conn, s.block_num)?.map(|(b, _)| b)),
                None => Ok(None),
            })
            .map_err(internal)?
            .ok_or_else(ApiError::block_not_found)?;
        Ok(one_reply(&request, json::block(&block)))
    })
    .await
}

/// Pages of batches or transactions: newest first, `start` is an id.
fn seq_page<T>(
    request: &Request,
    limit: usize,
    seq_of: impl Fn(&str) -> Result<Option<i64>, StoreError>,
    page: impl Fn(i64, usize) -> Result<Vec<(i64, T)>, StoreError>,
    id_of: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let from = match request.query.get("start") {
        None => i64::MAX,
        Some(start) => match seq_of(start).map_err(internal)? {
            Some(seq) => seq,
            None => {
                return Err(ApiError::paging_invalid(format!(
                    "start={start:?} is not a committed id"
                )))
            }
        },
    };
    let mut items = page(from, limit + 1).map_err(internal)?;
    let next = if items.len() > limit {
        items.pop().map(|(_, t)| id_of(&t))
    } else {
        None
    };
    Ok((items.into_iter().map(|(_, t)| t).collect(), next))
}

pub async fn list_batches(
    context: Arc<RestContext>,
    request: Request,
) -> Result<Response, ApiError> {
    blocking(move || {
        let limit = limit(&request)?;
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = resolve_head(conn, &request)?;
                    let (batches, next) = seq_page(
                        &request,
                        limit,
                        |id| store::batch_seq(conn, id),
                        |from, n| store::batches_down_from(conn, from, n),
                        |b| b.get_header_signature().to_string(),
                    )?;
                    let data = batches.iter().map(json::batch).collect();
                    Ok(list_reply(
                        &request,
                        &head.block_id,
                        data,
                        paging(&request, limit, next),
                    ))
                })())
            })
            .map_err(internal)?
    })
    .await
}

pub async fn get_batch(
    context: Arc<RestContext>,
    request: Request,
    id: String,
) -> Result<Response, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::invalid_id(&id));
    }
    blocking(move || {
        let (batch, _) = context
            .chain
            .read(|conn| store::batch_by_id(conn, &id))
            .map_err(internal)?
            .ok_or_else(ApiError::batch_not_found)?;
        Ok(one_reply(&request, json::batch(&batch)))
    })
    .await
}

pub async fn list_transactions(
    context: Arc<RestContext>,
    request: Request,
) -> Result<Response, ApiError> {
    blocking(move || {
        let limit = limit(&request)?;
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = resolve_head(conn, &request)?;
                    let (txns, next) = seq_page(
                        &request,
                        limit,
                        |id| store::transaction_seq(conn, id),
                        |from, n| store::transactions_down_from(conn, from, n),
                        |t| t.get_header_signature().to_string(),
                    )?;
                    let data = txns.iter().map(json::transaction).collect();
                    Ok(list_reply(
                        &request,
                        &head.block_id,
                        data,
                        paging(&request, limit, next),
                    ))
                })())
            })
            .map_err(internal)?
    })
    .await
}

pub async fn get_transaction(
    context: Arc<RestContext>,
    request: Request,
    id: String,
) -> Result<Response, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::invalid_id(&id));
    }
    blocking(move || {
        let txn = context
            .chain
            .read(|conn| store::transaction_by_id(conn, &id))
            .map_err(internal)?
            .ok_or_else(ApiError::transaction_not_found)?;
        Ok(one_reply(&request, json::transaction(&txn)))
    })
    .await
}

fn is_hex_prefix(s: &str, max: usize) -> bool {
    s.len() <= max && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `/state` reads the current state only: a `head` other than the chain
/// head is refused (this node keeps no historical state).
fn current_head_only(
    conn: &rusqlite::Connection,
    request: &Request,
) -> Result<BlockSummary, ApiError> {
    let head = resolve_head(conn, request)?;
    let current = store::head(conn).map_err(internal)?;
    match current {
        Some(current) if current.block_id == head.block_id => Ok(head),
        _ => Err(ApiError::head_not_found(&format!(
            "{} (this node serves state at the current head only)",
            head.block_id
        ))),
    }
}

pub async fn list_state(context: Arc<RestContext>, request: Request) -> Result<Response, ApiError> {
    blocking(move || {
        let limit = limit(&request)?;
        let prefix = request.query.get("address").cloned().unwrap_or_default();
        if !is_hex_prefix(&prefix, 70) {
            return Err(ApiError::invalid_address(&prefix));
        }
        let start = request.query.get("start").cloned().unwrap_or_default();
        if !(start.is_empty() || (start.len() == 70 && is_hex_prefix(&start, 70))) {
            return Err(ApiError::paging_invalid(format!("start={start:?} is not a 70-hex address")));
        }
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = current_head_only(conn, &request)?;
                    let mut leaves = store::state_page(conn, &prefix, &start, limit + 1).map_err(internal)?;
                    let next = if leaves.len() > limit { leaves.pop().map(|(a, _)| a) } else { None };
                    let data = leaves
                        .iter()
                        .map(|(address, value)| json!({"address": address, "data": json::b64(value)}))
                        .collect();
                    Ok(list_reply(&request, &head.block_id, data, paging(&request, limit, next)))
                })())
            })
            .map_err(internal)?
    })
    .await
}

pub async fn get_state(
    context: Arc<RestContext>,
    request: Request,
    address: String,
) -> Result<Response, ApiError> {
    if !(address.len() == 70 && is_hex_prefix(&address, 70)) {
        return Err(ApiError::invalid_address(&address));
    }
    blocking(move || {
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = current_head_only(conn, &request)?;
                    let value = store::state_value(conn, &address)
                        .map_err(internal)?
                        .ok_or_else(ApiError::state_not_found)?;
                    Ok(warp::reply::json(&json!({
                        "data": json::b64(&value),
                        "head": head.block_id,
                        "link": request.link(),
                    }))
                    .into_response())
                })())
            })
            .map_err(internal)?
    })
    .await
}

pub async fn receipts(context: Arc<RestContext>, request: Request) -> Result<Response, ApiError> {
    let ids = if request.method == warp::http::Method::POST {
        if request.content_type() != "application/json" {
            return Err(ApiError::wrong_receipt_type());
        }
        let ids: Vec<String> =
            serde_json::from_slice(&request.body).map_err(|_| ApiError::receipt_body_invalid())?;
        if ids.is_empty() {
            return Err(ApiError::receipt_body_invalid());
        }
        ids
    } else {
        let ids = id_list(request.query.get("id"));
        if ids.is_empty() {
            return Err(ApiError::receipt_id_missing());
        }
        ids
    };
    if let Some(bad) = ids.iter().find(|id| !is_id(id)) {
        return Err(ApiError::invalid_id(bad));
    }
    blocking(move || {
        let found = context
            .chain
            .read(|conn| {
                ids.iter()
                    .map(|id| store::receipt(conn, id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(internal)?;
        let mut data = Vec::with_capacity(found.len());
        for receipt in found {
            data.push(json::receipt(
                &receipt.ok_or_else(ApiError::receipt_not_found)?,
            ));
        }
        Ok(one_reply(&request, Value::from(data)))
    })
    .await
}
