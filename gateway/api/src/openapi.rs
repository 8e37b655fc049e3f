//! The OpenAPI 3 description of the API, served at `/openapi.json`.
use serde_json::{json, Value};

fn op(summary: &str, public: bool, params: Value) -> Value {
    let mut operation = json!({
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": {"description": "the answer, naming the block it is true at (as_of_block)"},
            "400": {"description": "malformed input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "404": {"description": "not on the ledger (as indexed)"},
            "503": {"description": "the index cannot answer"}
        }
    });
    if !public {
        operation["security"] = json!([{"partnerSignature": []}, {"partnerToken": []}]);
        operation["responses"]["401"] = json!({"description": "no or bad partner credentials"});
        operation["responses"]["403"] = json!({"description": "the partner may not see this"});
    }
    operation
}

fn param(name: &str, location: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": location, "required": required, "description": description, "schema": {"type": "string"}})
}

/// A non-JSON answer (the web page and its assets, the document itself).
fn asset(summary: &str, media: &str) -> Value {
    json!({"get": {"summary": summary, "parameters": [],
        "responses": {"200": {"description": summary, "content": {media: {}}}}}})
}

/// The OpenAPI document. Its paths are exactly [`crate::routes::ROUTES`].
pub fn document() -> Value {
    let gtin = param(
        "gtin",
        "path",
        true,
        "GTIN-8/12/13/14 with a valid check digit",
    );
    let lot = param("lot", "path", true, "lot (batch) number");
    let serial = param("serial", "path", true, "serial");
    let expiry = param("17", "query", false, "printed expiry YYMMDD");
    let link = |summary: &str, params: Value| json!({"get": op(&format!("verify by GS1 Digital Link: {summary}; the web page instead when Accept includes text/html"), true, params)});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "coldchain provenance API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Answers from an index of the Sawtooth ledger; every answer names the block it is true at. Verification is public; other reads need a partner key: headers X-Coldchain-Key, X-Coldchain-Timestamp (unix s, within 300 s) and X-Coldchain-Signature (secp256k1 over METHOD\\npath\\nquery\\ntimestamp, SHA-256, compact hex), or Authorization: Bearer <token> from POST /api/v1/tokens."},
        "paths": {
            "/api/v1/status": {"get": op("index head, chain head, lag in blocks and seconds, follower state, and whether opening the index rebuilt it", true, json!([]))},
            "/api/v1/verify": {"get": op("verify a pack or lot", true, json!([
                param("gtin", "query", true, "GTIN"), param("lot", "query", false, "lot"),
                param("serial", "query", false, "serial"), param("exp", "query", false, "printed expiry YYMMDD")]))},
            "/": asset("the web page: verify a pack (paste a Digital Link or type GTIN/lot/serial)", "text/html"),
            "/index.html": asset("the web page (same as /)", "text/html"),
            "/blood": asset("the web page's emergency blood board", "text/html"),
            "/app.js": asset("the web page's script", "text/javascript"),
            "/style.css": asset("the web page's style sheet", "text/css"),
            "/openapi.json": asset("this document", "application/json"),
            "/01/{gtin}": link("a GTIN", json!([gtin.clone(), expiry.clone()])),
            "/01/{gtin}/10/{lot}": link("GTIN and lot", json!([gtin.clone(), lot.clone(), expiry.clone()])),
            "/01/{gtin}/21/{serial}": link("GTIN and serial", json!([gtin.clone(), serial.clone(), expiry.clone()])),
            "/01/{gtin}/10/{lot}/21/{serial}": link("GTIN, lot and serial", json!([gtin.clone(), lot.clone(), serial, expiry])),
            "/api/v1/lots/{gtin}/{lot}": {"get": op("lot provenance: product, custody chain, thermal summary", false, json!([gtin.clone(), lot.clone()]))},
            "/api/v1/lots/{gtin}/{lot}/epcis": {"get": op("EPCIS 2.0 JSON-LD document of the lot's events", false, json!([gtin, lot]))},
            "/api/v1/shipments/{id}/readings": {"get": op("shipment readings with hash-chain check; paging, chart buckets, CSV", false, json!([
                param("id", "path", true, "shipment id"), param("from", "query", false, "unix s"), param("to", "query", false, "unix s"),
                param("limit", "query", false, "page size, 1..5000 (CSV 1..200000)"), param("after", "query", false, "next_cursor of the previous page"),
                param("points", "query", false, "chart buckets 1..2000 (min/max/mean per bucket, over every reading of the window)"), param("format", "query", false, "json or csv (block in X-Coldchain-As-Of-Block headers)"), param("verify", "query", false, "chain (default) or payloads: check the page's rows against the node's transaction payloads")]))},
            "/api/v1/blood/requests": {"get": op("open emergency blood requests, most urgent first", false, json!([]))},
            "/api/v1/blood/units": {"get": op("available in-spec compatible units", false, json!([
                param("component", "query", false, "red_cells, whole_blood, platelets, fresh_frozen_plasma, cryoprecipitate"),
                param("abo", "query", false, "patient ABO (with rh and component)"), param("rh", "query", false, "+ or -"),
                param("site", "query", false, "GLN of the holding site")]))},
            "/api/v1/batches": {"post": op("submit a serialised BatchList to the node; wait=N seconds for status", false, json!([param("wait", "query", false, "0..60")]))},
            "/api/v1/tokens": {"post": op("create an API token bound to the signing key (signed request only; each signed request creates one token: a replay answers 401 replayed_request)", false, json!([param("label", "query", false, "label"), param("nonce", "query", false, "any unique value, to sign several token requests in one second")]))},
            "/api/v1/audit": {"get": op("audit log of restricted reads, served (status 200) and refused to registered agents (403): the caller's own; inspectors and regulators: everyone's, or one key's with key=", false, json!([
                param("limit", "query", false, "1..1000 (default 100), newest first"),
                param("key", "query", false, "inspectors and regulators only: the entries of this public key (ignored for other callers, who always get their own)")]))}
        },
        "components": {
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}},
            "securitySchemes": {
                "partnerSignature": {"type": "apiKey", "in": "header", "name": "X-Coldchain-Signature"},
                "partnerToken": {"type": "http", "scheme": "bearer"}
            }
        }
    })
}
