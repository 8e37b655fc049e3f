//! The Sawtooth-compatible REST API (warp): same paths, JSON shapes, error
//! codes and paging as sawtooth-core's REST API, so clients written for a
//! Sawtooth network work unchanged.
//!
//! One catch-all route reads method, path, query, headers and a size-limited
//! body, then [`route`] dispatches by hand: every failure, including unknown
//! paths and oversized bodies, becomes Sawtooth-style error JSON with a 4xx
//! status. The API never writes state; it queues validated batches.
//!
//! - [`submit`]: `POST /batches`, `/batch_statuses`.
//! - [`reads`]: blocks, batches, transactions, state, receipts, and the
//!   validator's `/peers` and `/status` (a one-node network: no peers, no
//!   network endpoint).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::Filter;

use crate::chain::Chain;
use crate::handlers::HandlerRegistry;
use crate::intake::Intake;
use crate::node::NodeError;

pub mod errors;
pub mod json;
mod reads;
mod submit;

use errors::ApiError;

/// Largest accepted request body (Sawtooth's REST API uses 10 MiB too).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What the handlers share.
pub struct RestContext {
    pub intake: Arc<Intake>,
    pub chain: Arc<Chain>,
    pub registry: HandlerRegistry,
}

/// One parsed request.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Request {
    /// `http://host` as the client addressed us (for `link`s).
    pub fn base_url(&self) -> String {
        let host = self
            .headers
            .get(warp::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        format!("http://{host}")
    }

    /// The URL of this request.
    pub fn link(&self) -> String {
        if self.raw_query.is_empty() {
            format!("{}{}", self.base_url(), self.path)
        } else {
            format!("{}{}?{}", self.base_url(), self.path, self.raw_query)
        }
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(warp::http::header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .unwrap_or("")
    }
}

/// Binds `addr` and serves on a dedicated runtime thread. Returns the bound
/// address, a stop sender and the thread.
pub fn serve(
    addr: SocketAddr,
    context: Arc<RestContext>,
) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>, JoinHandle<()>), NodeError> {
    let rest_error = |detail: String| NodeError::Rest {
        addr: addr.to_string(),
        detail,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        rest_error(format!(
            "{e}; choose another --rest-api address or stop the process using it"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| rest_error(e.to_string()))?;
    let bound = listener
        .local_addr()
        .map_err(|e| rest_error(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rest-api")
        .enable_all()
        .build()
        .map_err(|e| rest_error(e.to_string()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rest-api-main".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!("REST API listener failed: {e}");
                        return;
                    }
                };
                let routes = warp::method()
                    .and(warp::path::full())
                    .and(warp::query::raw().or(warp::any().map(String::new)).unify())
                    .and(warp::header::headers_cloned())
                    .and(warp::body::stream())
                    .then(
                        move |method, path: warp::path::FullPath, query, headers, body| {
                            let context = context.clone();
                            async move {
                                handle(
                                    context,
                                    method,
                                    path.as_str().to_string(),
                                    query,
                                    headers,
                                    body,
                                )
                                .await
                            }
                        },
                    );
                tracing::info!("REST API listening on http://{bound}");
                warp::serve(routes)
                    .incoming(listener)
                    .graceful(async {
                        let _ = stop_rx.await;
                    })
                    .run()
                    .await;
            });
        })
        .map_err(|e| rest_error(e.to_string()))?;
    Ok((bound, stop_tx, thread))
}

async fn read_body<S, B>(body: S) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::bad_query(format!("request body could not be read: {e}")))?;
        if collected.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            collected.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(collected.to_vec())
}

async fn handle<S, B>(
    context: Arc<RestContext>,
    method: Method,
    path: String,
    raw_query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let query = match serde_urlencoded::from_str::<Vec<(String, String)>>(&raw_query) {
        Ok(pairs) => pairs.into_iter().collect(),
        Err(e) => return ApiError::bad_query(e).into_response(),
    };
    let request = Request {
        method,
        path,
        query,
        raw_query,
        headers,
        body,
    };
    match route(context, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(context: Arc<RestContext>, request: Request) -> Result<Response, ApiError> {
    let path = request.path.trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // HEAD is answered as GET (hyper sends no body), as aiohttp does for Sawtooth.
    let get = request.method == Method::GET || request.method == Method::HEAD;
    let post = request.method == Method::POST;
    match (segments.as_slice(), get, post) {
        (["batches"], _, true) => submit::post_batches(context, request).await,
        (["batch_statuses"], true, _) | (["batch_statuses"], _, true) => {
            submit::batch_statuses(context, request).await
        }
        (["receipts"], true, _) | (["receipts"], _, true) => {
            reads::receipts(context, request).await
        }
        (["batches"], true, _) => reads::list_batches(context, request).await,
        (["batches", id], true, _) => reads::get_batch(context, request, id.to_string()).await,
        (["blocks"], true, _) => reads::list_blocks(context, request).await,
        (["blocks", id], true, _) => reads::get_block(context, request, id.to_string()).await,
        (["transactions"], true, _) => reads::list_transactions(context, request).await,
        (["transactions", id], true, _) => {
            reads::get_transaction(context, request, id.to_string()).await
        }
        (["state"], true, _) => reads::list_state(context, request).await,
        (["state", address], true, _) => {
            reads::get_state(context, request, address.to_string()).await
        }
        (["peers"], true, _) => Ok(reads::peers(&request)),
        (["status"], true, _) => Ok(reads::status(&request)),
        (
            ["batches"]
            | ["batch_statuses"]
            | ["receipts"]
            | ["batches", _]
            | ["blocks"]
            | ["blocks", _]
            | ["transactions"]
            | ["transactions", _]
            | ["state"]
            | ["state", _]
            | ["peers"]
            | ["status"],
            _,
            _,
        ) => Err(ApiError::method_not_allowed(
            request.method.as_str(),
            &request.path,
        )),
        _ => Err(ApiError::not_found(&request.path)),
    }
}

/// Runs blocking work (SQLite, signature checks) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("request worker failed: {e}")))?
}

/// Parses a comma-separated `id` list (also accepts repeated keys joined by serde).
pub(crate) fn id_list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// True for a 128-hex block/batch/transaction id.
pub(crate) fn is_id(id: &str) -> bool {
    id.len() == 128 && id.bytes().all(|b| b.is_ascii_hexdigit())
}
