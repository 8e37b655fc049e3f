//! The HTTP surface. One warp filter hands every request to [`dispatch`],
//! which routes on method and path segments; every failure becomes a JSON
//! error with a 4xx status (or 502/503 when the node or index cannot answer).
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

use crate::access::{self, Caller, Credentials};
use crate::error::ApiError;
use crate::follower::FollowerStatus;
use crate::freshness::FreshnessLimits;
use crate::index::IndexStore;
use crate::node::NodeClient;

mod health;
mod lightweight_messaging;
mod lots;
mod verify;

/// What every handler shares.
pub struct AppState {
    pub index: Arc<dyn IndexStore>,
    pub node: NodeClient,
    pub status: Arc<FollowerStatus>,
    /// Signed token requests already used (replays are refused).
    pub replay: access::ReplayGuard,
    /// Whether a chain follower keeps the index current (false: `--no-follow`).
    pub following: bool,
    /// Beyond these verification answers 503 instead of a verdict.
    pub limits: FreshnessLimits,
    /// How long a request body may take to arrive ([`BODY_TIMEOUT`]).
    pub body_timeout: Duration,
}

/// A request as the router sees it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub raw_query: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Longest accepted query string and request body.
const MAX_QUERY: usize = 2048;
const MAX_BODY: u64 = 8 * 1024 * 1024;

/// How long a request body may take to arrive in full. A client that declares
/// more bytes than it sends (or sends them very slowly) is answered 408 after
/// this, instead of holding a connection and a task forever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Answer = Result<Response<Bytes>, ApiError>;

/// The warp filter serving the whole API.
pub fn filter(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone {
    let body_timeout = state.body_timeout;
    let state = warp::any().map(move || Arc::clone(&state));
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // The body stream is only ever unavailable if another filter took it first.
    let body = warp::header::headers_cloned()
        .and(warp::path::full())
        .and(warp::body::stream())
        .then(
            move |headers: HeaderMap, path: warp::path::FullPath, stream| {
                read_body(headers, path, stream, body_timeout)
            },
        )
        .or(warp::any().map(|| Ok(Bytes::new())))
        .unify();
    state
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(body)
        .then(
            |state: Arc<AppState>,
             method,
             path: warp::path::FullPath,
             raw_query: String,
             headers,
             body: Result<Bytes, ApiError>| async move {
                let path = path.as_str().to_string();
                let body = match body {
                    Ok(body) => body,
                    Err(error) => return error_response(error),
                };
                match parse_query(&raw_query) {
                    Ok(query) => {
                        let request = Request {
                            method,
                            path,
                            raw_query,
                            query,
                            headers,
                            body,
                        };
                        dispatch(&state, &request)
                            .await
                            .unwrap_or_else(error_response)
                    }
                    Err(error) => error_response(error),
                }
            },
        )
}

/// Reads a request body of at most [`MAX_BODY`] bytes with a Content-Length:
/// a larger one is refused (413) before it is read, a chunked one without a
/// length is refused (411), never silently taken as empty; one that has not
/// arrived in full within `timeout` is answered 408.
async fn read_body<S, B>(
    headers: HeaderMap,
    path: warp::path::FullPath,
    stream: S,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::TryStreamExt;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (length, encoding) = (header("content-length"), header("transfer-encoding"));
    // Only the batch pass-through takes a body; elsewhere the advice is to send none.
    let advice = if path.as_str() == "/api/v1/batches" {
        "split the batches into several requests".to_string()
    } else {
        format!(
            "{} takes no request body: send the request without one",
            crate::identifiers::shorten(path.as_str())
        )
    };
    let too_large = |size: String| ApiError {
        status: 413,
        code: "body_too_large",
        message: format!(
            "the request body is {size} bytes; at most {MAX_BODY} are accepted: {advice}"
        ),
    };
    let declared = match (&length, &encoding) {
        (None, Some(_)) => {
            return Err(ApiError {
                status: 411,
                code: "length_required",
                message: "send the body with a Content-Length header; chunked request bodies are not accepted".into(),
            })
        }
        (None, None) => None,
        (Some(length), _) => Some(length.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "bad_content_length",
                format!(
                    "Content-Length {:?} is not a number of bytes",
                    crate::identifiers::shorten(length)
                ),
            )
        })?),
    };
    match declared {
        None | Some(0) => return Ok(Bytes::new()),
        Some(size) if size > MAX_BODY => return Err(too_large(size.to_string())),
        Some(_) => {}
    }
    let mut body = bytes::BytesMut::new();
    let read = async {
        let mut stream = std::pin::pin!(stream);
        while let Some(mut chunk) = stream.try_next().await.map_err(|e| {
            ApiError::bad_request(
                "bad_body",
                format!("the request body could not be read: {e}"),
            )
        })? {
            if body.len() as u64 + chunk.remaining() as u64 > MAX_BODY {
                return Err(too_large(format!("more than {MAX_BODY}")));
            }
            while chunk.has_remaining() {
                let part = chunk.chunk();
                body.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ApiError {
                status: 408,
                code: "body_timeout",
                message: format!(
                    "the request body did not arrive in full within {} s: {} of the {} bytes \
                     Content-Length declares came; send the whole body, with a \
                     Content-Length that matches it",
                    timeout.as_secs_f64(),
                    body.len(),
                    declared.unwrap_or_default()
                ),
            })
        }
    }
    Ok(body.freeze())
}

/// Parses `a=1&b=x%20y` (first value of a repeated key wins).
pub fn parse_query(raw: &str) -> Result<HashMap<String, String>, ApiError> {
    if raw.len() > MAX_QUERY {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!(
                "query string is {} bytes; at most {MAX_QUERY} are accepted",
                raw.len()
            ),
        ));
    }
    let mut query = HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    ApiError::bad_request(
                        "bad_encoding",
                        "query string is not UTF-8 after percent-decoding".into(),
                    )
                })
        };
        query.entry(decode(key)?).or_insert(decode(value)?);
    }
    Ok(query)
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    if let Ok(value) = "nosniff".parse() {
        response
            .headers_mut()
            .insert("x-content-type-options", value);
    }
    response
}

pub(crate) fn json_answer<T: Serialize>(status: u16, value: &T) -> Answer {
    let body = serde_json::to_vec(value).map_err(|e| ApiError {
        status: 503,
        code: "encode",
        message: e.to_string(),
    })?;
    Ok(respond(status, "application/json", body))
}

fn error_response(error: ApiError) -> Response<Bytes> {
    let body = serde_json::to_vec(&error).unwrap_or_else(|_| b"{\"error\":\"internal\"}".to_vec());
    respond(error.status, "application/json", body)
}

impl Request {
    fn credentials(&self) -> Credentials {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Credentials {
            key: header("x-coldchain-key"),
            timestamp: header("x-coldchain-timestamp"),
            signature: header("x-coldchain-signature"),
            bearer: header("authorization")
                .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string())),
        }
    }

    /// A query parameter parsed as a number within `range`, or `default`.
    pub(crate) fn number(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.query.get(name) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!(
                        "{name}={:?} must be a whole number from {} to {}",
                        crate::identifiers::shorten(raw),
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    fn wants_html(&self) -> bool {
        self.headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
    }
}

/// Authenticates a partner, or refuses.
pub(crate) async fn partner(state: &AppState, request: &Request) -> Result<Caller, ApiError> {
    access::authenticate(
        state.index.as_ref(),
        &request.credentials(),
        request.method.as_str(),
        &request.path,
        &request.raw_query,
        now_s(),
    )
    .await
}

/// Every (method, path template) the router serves, as `/openapi.json`
/// documents them (`{name}` is one path segment). [`dispatch`] is the router;
/// this list is its description, and `tests/openapi_routes.rs` checks it both
/// ways: against the OpenAPI document, and against the router's answers (every
/// route is served; methods and neighbouring paths not listed answer "no such
/// endpoint").
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/blood"),
    ("GET", "/app.js"),
    ("GET", "/style.css"),
    ("GET", "/openapi.json"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/01/{gtin}"),
    ("GET", "/01/{gtin}/10/{lot}"),
    ("GET", "/01/{gtin}/21/{serial}"),
    ("GET", "/01/{gtin}/10/{lot}/21/{serial}"),
    ("GET", "/vrs/01/{gtin}/10/{lot}/21/{serial}"),
    ("GET", "/vrs/gtin/{gtin}/lot/{lot}/ser/{serial}"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/verify"),
    ("GET", "/api/v1/lots/{gtin}/{lot}"),
    ("GET", "/api/v1/lots/{gtin}/{lot}/epcis"),
    ("GET", "/api/v1/shipments/{id}/readings"),
    ("GET", "/api/v1/blood/requests"),
    ("GET", "/api/v1/blood/units"),
    ("POST", "/api/v1/batches"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/audit"),
];

const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

async fn dispatch(state: &AppState, request: &Request) -> Answer {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    // HEAD is answered as GET (hyper sends the head without the body).
    let get = request.method == Method::GET || request.method == Method::HEAD;
    match (segments.as_slice(), get) {
        ([""] | ["index.html"] | ["blood"], true) => {
            Ok(respond(200, "text/html; charset=utf-8", PAGE))
        }
        (["app.js"], true) => Ok(respond(200, "text/javascript; charset=utf-8", SCRIPT)),
        (["style.css"], true) => Ok(respond(200, "text/css; charset=utf-8", STYLE)),
        (["openapi.json"], true) => json_answer(200, &crate::openapi::document()),
        (["health"], true) => health::health(state).await,
        (["metrics"], true) => health::metrics(state).await,
        (["01", ..], true) if request.wants_html() => {
            Ok(respond(200, "text/html; charset=utf-8", PAGE))
        }
        (["01", rest @ ..], true) => verify::digital_link(state, request, rest).await,
        // GS1 Lightweight Messaging verification requests (DSCSA VRS).
        (["vrs", rest @ ..], _) => lightweight_messaging::serve(state, request, rest).await,
        (["api", "v1", rest @ ..], _) => api_v1(state, request, rest).await,
        _ => Err(ApiError::not_found(format!(
            "no such endpoint: {} {}; see /openapi.json",
            request.method,
            crate::identifiers::shorten(&request.path)
        ))),
    }
}

async fn api_v1(state: &AppState, request: &Request, rest: &[&str]) -> Answer {
    let method = &request.method;
    let route_method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    match (rest, route_method) {
        (["status"], &Method::GET) => health::status(state).await,
        (["verify"], &Method::GET) => verify::by_query(state, request).await,
        (["lots", gtin, lot], &Method::GET) => lots::provenance(state, request, gtin, lot).await,
        (["lots", gtin, lot, "epcis"], &Method::GET) => {
            lots::epcis(state, request, gtin, lot).await
        }
        (["shipments", id, "readings"], &Method::GET) => lots::readings(state, request, id).await,
        (["blood", "requests"], &Method::GET) => lots::blood_requests(state, request).await,
        (["blood", "units"], &Method::GET) => lots::blood_units(state, request).await,
        (["batches"], &Method::POST) => submit_batches(state, request).await,
        (["tokens"], &Method::POST) => create_token(state, request).await,
        (["audit"], &Method::GET) => audit_log(state, request).await,
        _ => Err(ApiError::not_found(format!(
            "no such endpoint: {method} {}; see /openapi.json",
            crate::identifiers::shorten(&request.path)
        ))),
    }
}

async fn submit_batches(state: &AppState, request: &Request) -> Answer {
    partner(state, request).await?;
    if request.body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            format!("POST a serialised BatchList (application/octet-stream) of at most {MAX_BODY} bytes"),
        ));
    }
    let wait = request.number("wait", 0, 0..=60)?;
    let (status, body) = state
        .node
        .submit(request.body.clone())
        .await
        .map_err(|e| ApiError::upstream(e.to_string()))?;
    if !(200..300).contains(&status) {
        let code = if status == 429 {
            429
        } else if status >= 500 {
            502
        } else {
            400
        };
        return Err(ApiError {
            status: code,
            code: "batch_refused",
            message: format!("the node answered HTTP {status}: {body}"),
        });
    }
    // The node names the batches in its `batch_statuses` link; that URL is
    // the node's internal address, so only the ids are passed on.
    let ids: Vec<String> = body
        .get("link")
        .and_then(Value::as_str)
        .and_then(|link| link.split_once("id="))
        .map(|(_, ids)| ids.split('&').next().unwrap_or_default())
        .unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect();
    if wait == 0 || ids.is_empty() {
        return json_answer(202, &json!({"batch_ids": ids}));
    }
    let statuses = state
        .node
        .batch_statuses(&ids.join(","), wait)
        .await
        .map_err(|e| ApiError::upstream(e.to_string()))?;
    json_answer(
        200,
        &json!({"batch_ids": ids, "statuses": statuses.get("data").cloned().unwrap_or(Value::Null)}),
    )
}

async fn create_token(state: &AppState, request: &Request) -> Answer {
    // Tokens can only be created with a signature, never with another token.
    let credentials = Credentials {
        bearer: None,
        ..request.credentials()
    };
    let now = now_s();
    let caller = access::authenticate(
        state.index.as_ref(),
        &credentials,
        request.method.as_str(),
        &request.path,
        &request.raw_query,
        now,
    )
    .await?;
    // Authenticated, so the timestamp parses and is fresh; a replay of the
    // same signed request within the window would mint a second token.
    let timestamp = credentials.timestamp.unwrap_or_default();
    let message = access::signed_message(
        request.method.as_str(),
        &request.path,
        &request.raw_query,
        &timestamp,
    );
    state.replay.admit(
        &caller.public_key,
        &message,
        timestamp.parse().unwrap_or(now),
        now,
    )?;
    let label = request
        .query
        .get("label")
        .map(|l| crate::identifiers::shorten(l))
        .unwrap_or_default();
    let token = access::new_token();
    state
        .index
        .store_token(
            &access::token_digest(&token),
            &caller.public_key,
            &label,
            now_s(),
        )
        .await?;
    json_answer(
        201,
        &json!({"token": token, "public_key": caller.public_key, "org_id": caller.org_id}),
    )
}

async fn audit_log(state: &AppState, request: &Request) -> Answer {
    let caller = partner(state, request).await?;
    let limit = request.number("limit", 100, 1..=1000)?;
    let key = match request.query.get("key") {
        Some(key) if caller.sees_everything() => key.clone(),
        // Asking for one's own entries by name is the same as not naming a key.
        Some(key) if *key != caller.public_key => {
            let refusal = ApiError::forbidden(format!(
                "only regulators and inspectors may read other keys' audit entries; \
                 organisation {} may read its own: leave out key=",
                caller.org_id
            ));
            return Err(access::refuse(
                state.index.as_ref(),
                &caller,
                request.method.as_str(),
                &request.path,
                "audit entries of another key",
                refusal,
                now_s(),
            )
            .await);
        }
        _ if caller.sees_everything() => String::new(),
        _ => caller.public_key.clone(),
    };
    let entries = state
        .index
        .audit_entries(&key, u32::try_from(limit).unwrap_or(100))
        .await?;
    json_answer(200, &json!({"entries": entries}))
}
