//! Sawtooth REST API errors: `{"error": {"code", "title", "message"}}` with
//! the same codes, titles and HTTP statuses as sawtooth-core's
//! `rest_api/exceptions.py`, plus a few for cases Sawtooth answers badly
//! (unknown paths, oversized bodies). Messages say what was wrong.
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub title: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: u32, title: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            code,
            title,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "title": self.title, "message": self.message}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            500,
            10,
            "Unknown Validator Error",
            format!("An unknown error occurred with the node: {detail}"),
        )
    }
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            503,
            15,
            "Validator Not Ready",
            "The node is shutting down and accepts no more batches; submit again once it is back.",
        )
    }
    pub fn batches_invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, 30, "Submitted Batches Invalid", detail)
    }
    pub fn queue_full() -> ApiError {
        ApiError::new(429, 31, "Unable to Accept Batches",
            "The validator cannot currently accept more batches, due to a full queue.  Please submit your request again.")
    }
    pub fn no_batches() -> ApiError {
        ApiError::new(400, 34, "No Batches Submitted",
            "The protobuf BatchList you submitted was empty and contained no Batches. You must submit at least one Batch.")
    }
    pub fn bad_protobuf(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(400, 35, "Protobuf Not Decodable",
            format!("The protobuf BatchList you submitted was malformed and could not be read: {detail}"))
    }
    pub fn wrong_submit_type() -> ApiError {
        ApiError::new(400, 42, "Wrong Content Type",
            "Batches must be submitted in a BatchList protobuf binary, with a 'Content-Type' header of 'application/octet-stream'.")
    }
    pub fn wrong_status_type() -> ApiError {
        ApiError::new(400, 43, "Wrong Content Type",
            "Requests for batch statuses sent as a POST must have a 'Content-Type' header of 'application/json'.")
    }
    pub fn status_body_invalid() -> ApiError {
        ApiError::new(400, 46, "Bad Status Request",
            "Requests for batch statuses sent as a POST must have a JSON formatted body with an array of at least one id string.")
    }
    pub fn head_not_found(head: &str) -> ApiError {
        ApiError::new(
            404,
            50,
            "Head Not Found",
            format!(
                "There is no block with the id specified in the 'head' query parameter: {head}"
            ),
        )
    }
    pub fn count_invalid(value: &str) -> ApiError {
        ApiError::new(400, 53, "Invalid Count Query",
            format!("The 'limit' query parameter must be a positive, non-zero integer (at most 1000 items are returned); got {value:?}."))
    }
    pub fn paging_invalid(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(400, 54, "Invalid Paging Query",
            format!("Paging request failed as written: {detail}. 'start' must be a position returned in 'paging.next_position'."))
    }
    pub fn invalid_id(id: &str) -> ApiError {
        ApiError::new(400, 60, "Invalid Resource Id",
            format!("Blockchain items are identified by 128 character hex-strings. A submitted block, batch, or transaction id was invalid: {id}"))
    }
    pub fn invalid_address(address: &str) -> ApiError {
        ApiError::new(400, 62, "Invalid State Address",
            format!("The state address submitted was invalid: {address:?}. To fetch specific state data, you must submit the full 70-character lowercase hex address; 'address' filters take a hex prefix of at most 70 characters."))
    }
    pub fn status_id_missing() -> ApiError {
        ApiError::new(400, 66, "Id Query Invalid or Missing",
            "Requests for batch statuses sent as a GET request must have an 'id' query parameter with a comma-separated list of at least one batch id.")
    }
    pub fn wait_invalid(value: &str) -> ApiError {
        ApiError::new(400, 67, "Invalid Wait Query",
            format!("The 'wait' query parameter must be a non-negative number of seconds (or empty); got {value:?}."))
    }
    pub fn block_not_found() -> ApiError {
        ApiError::new(
            404,
            70,
            "Block Not Found",
            "There is no block with the id specified in the blockchain.",
        )
    }
    pub fn batch_not_found() -> ApiError {
        ApiError::new(
            404,
            71,
            "Batch Not Found",
            "There is no batch with the id specified in the blockchain.",
        )
    }
    pub fn transaction_not_found() -> ApiError {
        ApiError::new(
            404,
            72,
            "Transaction Not Found",
            "There is no transaction with the id specified in the blockchain.",
        )
    }
    pub fn state_not_found() -> ApiError {
        ApiError::new(
            404,
            75,
            "State Not Found",
            "There is no state data at the address specified.",
        )
    }
    pub fn receipt_not_found() -> ApiError {
        ApiError::new(404, 80, "Transaction Receipt Not Found",
            "There is no transaction receipt for the transaction id specified in the receipt store.")
    }
    pub fn wrong_receipt_type() -> ApiError {
        ApiError::new(400, 81, "Wrong Content Type",
            "Requests for transaction receipts sent as a POST must have a 'Content-Type' header of 'application/json'.")
    }
    pub fn receipt_body_invalid() -> ApiError {
        ApiError::new(400, 82, "Bad Receipts Request",
            "Requests for transaction receipts sent as a POST must have a JSON formatted body with an array of at least one id string.")
    }
    pub fn receipt_id_missing() -> ApiError {
        ApiError::new(400, 83, "Id Query Invalid or Missing",
            "Requests for transaction receipts sent as a GET request must have an 'id' query parameter with a comma-separated list of at least one transaction id.")
    }
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, 404, "Not Found",
            format!("There is no resource at {path}. Paths: /batches, /batch_statuses, /state, /blocks, /transactions, /receipts, /peers, /status."))
    }
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            405,
            405,
            "Method Not Allowed",
            format!("{method} is not supported on {path}."),
        )
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(413, 413, "Request Entity Too Large",
            format!("The request body is larger than {limit} bytes; split the BatchList into smaller submissions."))
    }
    pub fn bad_query(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            400,
            400,
            "Invalid Query",
            format!("The query string could not be read: {detail}"),
        )
    }
}
