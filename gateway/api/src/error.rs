//! The API's error type: every failure becomes a JSON body
//! `{"error": code, "message": …}` with a 4xx status for the caller's mistakes
//! and 502/503 when the index or the node cannot answer. Never a bare 500.
use serde::Serialize;

use crate::index::IndexError;

/// An error answer.
#[derive(Clone, Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    #[serde(rename = "error")]
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: String) -> ApiError {
        ApiError {
            status: 400,
            code,
            message,
        }
    }
    pub fn unauthorized(message: String) -> ApiError {
        ApiError {
            status: 401,
            code: "unauthorized",
            message,
        }
    }
    pub fn forbidden(message: String) -> ApiError {
        ApiError {
            status: 403,
            code: "forbidden",
            message,
        }
    }
    pub fn not_found(message: String) -> ApiError {
        ApiError {
            status: 404,
            code: "not_found",
            message,
        }
    }
    pub fn upstream(message: String) -> ApiError {
        ApiError {
            status: 502,
            code: "node_unavailable",
            message,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> ApiError {
        tracing::warn!(%error, "index query failed");
        ApiError {
            status: 503,
            code: "index_unavailable",
            message: format!("the index could not answer: {error}"),
        }
    }
}

impl warp::reject::Reject for ApiError {}
