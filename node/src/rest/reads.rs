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

/// The page size asked for: `limit` as given (Sawtooth echoes it in
/// `paging.limit`, `null` when absent) and the size used (at most 1 000, as
/// the validator clamps it). A `limit` that is not a positive integer is
/// refused with Sawtooth's code 53.
struct Limit {
    given: Option<u64>,
    used: usize,
}

fn limit(request: &Request) -> Result<Limit, ApiError> {
    match request.query.get("limit") {
        None => Ok(Limit {
            given: None,
            used: DEFAULT_LIMIT,
        }),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Limit {
                given: Some(n),
                used: usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            }),
            _ => Err(ApiError::count_invalid(v)),
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

/// A URL of this endpoint as Sawtooth's `_build_url` writes it: the
/// request's query with `head`, `start` and `limit` replaced when given,
/// in the order head, start, limit, then the other keys sorted.
fn build_url(
    request: &Request,
    head: Option<&str>,
    start: Option<&str>,
    limit: Option<String>,
) -> String {
    let mut rest: Vec<(&String, &String)> = request
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "head" | "start" | "limit"))
        .collect();
    rest.sort();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push((key.to_string(), value));
        }
    };
    put(
        "head",
        head.map(str::to_string)
            .or_else(|| request.query.get("head").cloned()),
    );
    put(
        "start",
        start
            .map(str::to_string)
            .or_else(|| request.query.get("start").cloned()),
    );
    put(
        "limit",
        limit.or_else(|| request.query.get("limit").cloned()),
    );
    for (k, v) in rest {
        put(k, Some(v.clone()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        format!("{}{}", request.base_url(), request.path)
    } else {
        format!("{}{}?{query}", request.base_url(), request.path)
    }
}

/// One page of a list: its items, the position of its first item and of
/// the next page's first item (None on the last page).
struct Page {
    data: Vec<Value>,
    first: Option<String>,
    next: Option<String>,
}

/// The list envelope as Sawtooth writes it: `data`, `head`, a `link` to
/// this page (with `head`, `start`, `limit`), and `paging` with `limit` and
/// `start` as the client gave them (`null` when not given) plus
/// `next_position` and a `next` link when there is a next page.
fn list_reply(request: &Request, head: &str, limit: &Limit, page: Page) -> Response {
    let mut paging = Map::new();
    paging.insert("limit".into(), json!(limit.given));
    paging.insert("start".into(), json!(request.query.get("start")));
    let used = limit.used.to_string();
    if let Some(next) = &page.next {
        paging.insert("next_position".into(), json!(next));
        paging.insert(
            "next".into(),
            json!(build_url(
                request,
                Some(head),
                Some(next),
                limit.given.map(|n| n.to_string())
            )),
        );
    }
    let link = match &page.first {
        Some(first) => build_url(request, Some(head), Some(first), Some(used)),
        None => build_url(request, Some(head), None, None),
    };
    warp::reply::json(&json!({"data": page.data, "head": head, "link": link, "paging": paging}))
        .into_response()
}

/// Sawtooth's paging position of a block: its number as `0x` + 16 hex digits.
fn block_position(block_num: u64) -> String {
    format!("0x{block_num:016x}")
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
        let ids = filter_ids(&request)?;
        context
            .chain
            .read(|conn| Ok(blocks_page(conn, &request, &limit, ids.as_deref())))
            .map_err(internal)?
    })
    .await
}

/// The `id` filter of a list (`id=a,b`), each a 128-hex id; None without one.
fn filter_ids(request: &Request) -> Result<Option<Vec<String>>, ApiError> {
    if !request.query.contains_key("id") {
        return Ok(None);
    }
    let ids = id_list(request.query.get("id"));
    if let Some(bad) = ids.iter().find(|id| !is_id(id)) {
        return Err(ApiError::invalid_id(bad));
    }
    Ok(Some(ids))
}

/// A block `start` position: Sawtooth's `0x`-hex block number (a block id
/// is accepted too).
fn block_start(conn: &rusqlite::Connection, start: &str) -> Result<Option<u64>, ApiError> {
    if let Some(hex) = start.strip_prefix("0x") {
        return Ok(u64::from_str_radix(hex, 16).ok());
    }
    if is_id(start) {
        return Ok(store::block_summary(conn, start)
            .map_err(internal)?
            .map(|s| s.block_num));
    }
    Ok(None)
}

fn blocks_page(
    conn: &rusqlite::Connection,
    request: &Request,
    limit: &Limit,
    ids: Option<&[String]>,
) -> Result<Response, ApiError> {
    let head = resolve_head(conn, request)?;
    if let Some(ids) = ids {
        // Filtered by id: the named blocks at or below the head, no paging.
        let mut data = Vec::new();
        for id in ids {
            if let Some(summary) = store::block_summary(conn, id).map_err(internal)? {
                if summary.block_num <= head.block_num {
                    if let Some((block, _)) =
                        store::block_by_num(conn, summary.block_num).map_err(internal)?
                    {
                        data.push(json::block(&block));
                    }
                }
            }
        }
        let page = Page {
            data,
            first: None,
            next: None,
        };
        return Ok(list_reply(request, &head.block_id, limit, page));
    }
    let from = match request.query.get("start") {
        None => head.block_num,
        Some(start) => match block_start(conn, start)? {
            Some(num) if num <= head.block_num => num,
            _ => {
                return Err(ApiError::paging_invalid(format!(
                    "start={start:?} is not a block of this chain"
                )))
            }
        },
    };
    let mut nums = store::block_nums_down_from(conn, from, limit.used + 1).map_err(internal)?;
    let next = if nums.len() > limit.used {
        nums.pop()
    } else {
        None
    };
    let first = nums.first().map(|n| block_position(*n));
    let mut data = Vec::with_capacity(nums.len());
    for num in nums {
        if let Some((block, _)) = store::block_by_num(conn, num).map_err(internal)? {
            data.push(json::block(&block));
        }
    }
    let page = Page {
        data,
        first,
        next: next.map(block_position),
    };
    Ok(list_reply(request, &head.block_id, limit, page))
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
    limit: &Limit,
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
    let mut items = page(from, limit.used + 1).map_err(internal)?;
    let next = if items.len() > limit.used {
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
        let ids = filter_ids(&request)?;
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = resolve_head(conn, &request)?;
                    let page = match &ids {
                        Some(ids) => {
                            let mut data = Vec::new();
                            for id in ids {
                                if let Some((batch, block_num)) =
                                    store::batch_by_id(conn, id).map_err(internal)?
                                {
                                    if block_num <= head.block_num {
                                        data.push(json::batch(&batch));
                                    }
                                }
                            }
                            Page {
                                data,
                                first: None,
                                next: None,
                            }
                        }
                        None => {
                            let (batches, next) = seq_page(
                                &request,
                                &limit,
                                |id| store::batch_seq(conn, id),
                                |from, n| store::batches_down_from(conn, from, n),
                                |b| b.get_header_signature().to_string(),
                            )?;
                            Page {
                                first: batches
                                    .first()
                                    .map(|b| b.get_header_signature().to_string()),
                                data: batches.iter().map(json::batch).collect(),
                                next,
                            }
                        }
                    };
                    Ok(list_reply(&request, &head.block_id, &limit, page))
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
        let ids = filter_ids(&request)?;
        context
            .chain
            .read(|conn| {
                Ok((|| {
                    let head = resolve_head(conn, &request)?;
                    let page = match &ids {
                        Some(ids) => {
                            let mut data = Vec::new();
                            for id in ids {
                                if let Some(txn) =
                                    store::transaction_by_id(conn, id).map_err(internal)?
                                {
                                    data.push(json::transaction(&txn));
                                }
                            }
                            Page {
                                data,
                                first: None,
                                next: None,
                            }
                        }
                        None => {
                            let (txns, next) = seq_page(
                                &request,
                                &limit,
                                |id| store::transaction_seq(conn, id),
                                |from, n| store::transactions_down_from(conn, from, n),
                                |t| t.get_header_signature().to_string(),
                            )?;
                            Page {
                                first: txns.first().map(|t| t.get_header_signature().to_string()),
                                data: txns.iter().map(json::transaction).collect(),
                                next,
                            }
                        }
                    };
                    Ok(list_reply(&request, &head.block_id, &limit, page))
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
                    let mut leaves = store::state_page(conn, &prefix, &start, limit.used + 1).map_err(internal)?;
                    let next = if leaves.len() > limit.used { leaves.pop().map(|(a, _)| a) } else { None };
                    let page = Page {
                        first: leaves.first().map(|(a, _)| a.clone()),
                        data: leaves
                            .iter()
                            .map(|(address, value)| json!({"address": address, "data": json::b64(value)}))
                            .collect(),
                        next,
                    };
                    Ok(list_reply(&request, &head.block_id, &limit, page))
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
        // Sawtooth answers a POST without `link` (there is no URL to repeat).
        if request.method == warp::http::Method::POST {
            Ok(warp::reply::json(&json!({ "data": data })).into_response())
        } else {
            Ok(one_reply(&request, Value::from(data)))
        }
    })
    .await
}

/// `GET /peers`: the validator's peers. The embedded node is a one-node
/// network, so the list is empty, as on a Sawtooth validator without peers.
pub fn peers(request: &Request) -> Response {
    one_reply(request, json!([]))
}

/// `GET /status`: the validator's network endpoint and peers, as Sawtooth
/// answers for a validator started without `--endpoint` and without peers.
pub fn status(request: &Request) -> Response {
    one_reply(request, json!({"endpoint": "", "peers": []}))
}
