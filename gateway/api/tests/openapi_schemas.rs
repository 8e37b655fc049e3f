//! The answers and the OpenAPI document agree: real answers of every endpoint
//! (recorded story plus blood board, a stub node REST API for status,
//! batches and `verify=payloads`) are validated against the schemas of the
//! document the API serves at `/openapi.json`, for the status and media type
//! they came with. Every 2xx (status, media type) the document lists must be
//! exercised. The validator below covers the JSON Schema subset the document
//! uses (type, properties, required, items, enum, nullable, $ref, allOf,
//! oneOf, additionalProperties) and refuses any other keyword; an object
//! property the schema does not list is an error unless the schema says
//! `additionalProperties: true`, so a field added to a handler without the
//! document fails here too.
mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coldchain_api::access::signed_message;
use coldchain_api::chain::{ingest, Ingested};
use coldchain_api::index::IndexStore;
use coldchain_api::{Api, ApiConfig, ApiHandle};
use coldchain_processors::messages::coldchain::CustodyPayload_oneof_action as C;
use coldchain_processors::messages::coldchain::RegistryPayload_oneof_action as R;
use coldchain_processors::messages::coldchain::*;
use coldchain_processors::signing::Signer;
use serde_json::{json, Value};
use support::http::now_s;
use support::scenario::{self, GTIN, T0};
use support::{custody, drop_postgres_schema, gln, postgres_url, registry, Chain, Ledger};
use warp::Filter;

// ---------------------------------------------------------------------------
// A validator for the JSON Schema subset of the document.
// ---------------------------------------------------------------------------

const KEYWORDS: [&str; 12] = [
    "$ref",
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "nullable",
    "allOf",
    "oneOf",
    "additionalProperties",
    "description",
    "format",
];

struct Document<'a>(&'a Value);

impl Document<'_> {
    fn resolve(&self, reference: &str) -> Option<&Value> {
        reference
            .strip_prefix('#')
            .and_then(|pointer| self.0.pointer(pointer))
    }

    /// Checks a schema is one this validator understands and that its
    /// references resolve and its required properties are listed.
    fn lint(&self, schema: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            errors.push(format!("{at}: a schema must be an object"));
            return;
        };
        for key in object.keys() {
            if !KEYWORDS.contains(&key.as_str()) {
                errors.push(format!(
                    "{at}: keyword {key} is not supported by this validator"
                ));
            }
        }
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            if object.len() > 1 {
                errors.push(format!(
                    "{at}: siblings of $ref are ignored by OpenAPI 3.0 (wrap it in allOf)"
                ));
            }
            if self.resolve(reference).is_none() {
                errors.push(format!("{at}: $ref {reference} does not resolve"));
            }
            return;
        }
        if let Some(kind) = object.get("type").and_then(Value::as_str) {
            if !["object", "array", "string", "integer", "number", "boolean"].contains(&kind) {
                errors.push(format!("{at}: unknown type {kind}"));
            }
            if kind == "array" && !object.contains_key("items") {
                errors.push(format!("{at}: an array schema needs items"));
            }
        }
        let properties = object.get("properties").and_then(Value::as_object);
        for name in object
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let listed = name
                .as_str()
                .is_some_and(|n| properties.is_some_and(|p| p.contains_key(n)));
            if !listed {
                errors.push(format!("{at}: required {name} is not a property"));
            }
        }
        for (name, property) in properties.into_iter().flatten() {
            self.lint(property, &format!("{at}.{name}"), errors);
        }
        if let Some(items) = object.get("items") {
            self.lint(items, &format!("{at}[]"), errors);
        }
        for key in ["allOf", "oneOf"] {
            for (i, member) in object
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.lint(member, &format!("{at}/{key}/{i}"), errors);
            }
        }
        if let Some(extra) = object.get("additionalProperties").filter(|a| a.is_object()) {
            self.lint(extra, &format!("{at}/additionalProperties"), errors);
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(reference) {
                Some(target) => self.validate(target, value, at, errors),
                None => errors.push(format!("{at}: $ref {reference} does not resolve")),
            }
            return;
        }
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(kind) = schema.get("type").and_then(Value::as_str) {
            let ok = match kind {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "number" => value.is_number(),
                "integer" => {
                    value.is_i64()
                        || value.is_u64()
                        || value.as_f64().is_some_and(|f| f.fract() == 0.0)
                }
                _ => false,
            };
            if !ok {
                errors.push(format!("{at}: expected {kind}, got {}", short(value)));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!(
                    "{at}: {} is not one of {}",
                    short(value),
                    Value::Array(allowed.clone())
                ));
            }
        }
        for member in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.validate(member, value, at, errors);
        }
        if let Some(members) = schema.get("oneOf").and_then(Value::as_array) {
            let outcomes: Vec<Vec<String>> = members
                .iter()
                .map(|member| {
                    let mut found = Vec::new();
                    self.validate(member, value, at, &mut found);
                    found
                })
                .collect();
            let matching = outcomes.iter().filter(|o| o.is_empty()).count();
            if matching != 1 {
                errors.push(format!(
                    "{at}: matches {matching} of the oneOf schemas, not exactly one; {}",
                    outcomes
                        .iter()
                        .enumerate()
                        .map(|(i, o)| format!("#{i}: {}", o.join("; ")))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: required property {name} is missing"));
                }
            }
            for (name, property) in object {
                let inner = format!("{at}.{name}");
                match (
                    properties.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property_schema), _) => {
                        self.validate(property_schema, property, &inner, errors)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, Some(extra @ Value::Object(_))) => {
                        self.validate(extra, property, &inner, errors)
                    }
                    (None, _) if properties.is_some() => {
                        errors.push(format!("{inner}: property not in the document"))
                    }
                    (None, _) => {}
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Every schema in the document is understood and every reference resolves.
fn lint_document(document: &Value) -> Vec<String> {
    let doc = Document(document);
    let mut errors = Vec::new();
    for (name, schema) in document["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
    {
        doc.lint(schema, &format!("#/components/schemas/{name}"), &mut errors);
    }
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let at = format!("{method} {path} {status}");
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(reference) => match doc.resolve(reference) {
                        Some(target) => target,
                        None => {
                            errors.push(format!("{at}: $ref {reference} does not resolve"));
                            continue;
                        }
                    },
                    None => response,
                };
                let Some(content) = response["content"].as_object() else {
                    errors.push(format!("{at}: no content (every answer has a body)"));
                    continue;
                };
                for (media, body) in content {
                    match body.get("schema") {
                        Some(schema) => doc.lint(schema, &format!("{at} {media}"), &mut errors),
                        None => errors.push(format!("{at} {media}: no schema")),
                    }
                }
            }
        }
    }
    errors
}

// ---------------------------------------------------------------------------
// Answers checked against the served document.
// ---------------------------------------------------------------------------

struct Answer {
    status: u16,
    media: String,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

struct Checker {
    base: String,
    document: Value,
    /// (METHOD, template, status, media) answered and validated.
    seen: BTreeSet<(String, String, String, String)>,
}

impl Checker {
    async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        signer: Option<&Signer>,
        body: Option<&'static [u8]>,
        accept: Option<&str>,
    ) -> Answer {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut request = reqwest::Client::new().request(
            method.parse().expect("method"),
            format!("{}{path_and_query}", self.base),
        );
        if let Some(signer) = signer {
            let timestamp = now_s().to_string();
            let signature = signer.sign(signed_message(method, path, query, &timestamp).as_bytes());
            request = request
                .header("X-Coldchain-Key", signer.public_key())
                .header("X-Coldchain-Timestamp", timestamp)
                .header("X-Coldchain-Signature", signature);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/octet-stream")
                .body(body);
        }
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let media = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let text = response.text().await.expect("body");
        Answer {
            status,
            media,
            headers,
            text,
        }
    }

    /// Fetches `path_and_query` (an instance of `template`) and validates the
    /// answer against the document's response for its status and media type.
    async fn check(
        &mut self,
        method: &str,
        template: &str,
        path_and_query: &str,
        signer: Option<&Signer>,
    ) -> Answer {
        self.check_with(method, template, path_and_query, signer, None, None)
            .await
    }

    async fn check_with(
        &mut self,
        method: &str,
        template: &str,
        path_and_query: &str,
        signer: Option<&Signer>,
        body: Option<&'static [u8]>,
        accept: Option<&str>,
    ) -> Answer {
        let answer = self
            .request(method, path_and_query, signer, body, accept)
            .await;
        let errors = self.validate(method, template, &answer);
        assert!(
            errors.is_empty(),
            "{method} {path_and_query} answered {} {} that the document does not describe:\n  {}\nbody: {}",
            answer.status,
            answer.media,
            errors.join("\n  "),
            short(&answer.json())
        );
        self.seen.insert((
            method.to_string(),
            template.to_string(),
            answer.status.to_string(),
            answer.media.clone(),
        ));
        answer
    }

    fn validate(&self, method: &str, template: &str, answer: &Answer) -> Vec<String> {
        let doc = Document(&self.document);
        let Some(operation) = self.document["paths"][template].get(method.to_ascii_lowercase())
        else {
            return vec![format!("{method} {template} is not in the document")];
        };
        let Some(mut response) = operation["responses"].get(answer.status.to_string()) else {
            return vec![format!("status {} is not documented", answer.status)];
        };
        if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
            match doc.resolve(reference) {
                Some(target) => response = target,
                None => return vec![format!("$ref {reference} does not resolve")],
            }
        }
        let Some(schema) = response["content"][&answer.media].get("schema") else {
            return vec![format!(
                "media type {:?} is not documented for {}",
                answer.media, answer.status
            )];
        };
        let mut errors = Vec::new();
        if answer.media.ends_with("json") {
            match serde_json::from_str::<Value>(&answer.text) {
                Ok(body) => doc.validate(schema, &body, "$", &mut errors),
                Err(e) => errors.push(format!("the body is not JSON: {e}")),
            }
        } else {
            doc.validate(
                schema,
                &Value::String(answer.text.clone()),
                "$",
                &mut errors,
            );
            if answer.text.is_empty() {
                errors.push("empty body".into());
            }
        }
        errors
    }

    /// Every 2xx (method, path, status, media) in the document was answered.
    fn assert_every_success_answer_seen(&self) {
        let mut missing = Vec::new();
        for (path, operations) in self.document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if !status.starts_with('2') {
                        continue;
                    }
                    for media in response["content"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(m, _)| m)
                    {
                        let key = (
                            method.to_ascii_uppercase(),
                            path.clone(),
                            status.clone(),
                            media.clone(),
                        );
                        if !self.seen.contains(&key) {
                            missing.push(format!("{} {path} {status} {media}", key.0));
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "documented answers this test never validated:\n  {}",
            missing.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------
// A stub of the node's REST API: chain head, transactions, batches.
// ---------------------------------------------------------------------------

struct StubNode {
    url: String,
    /// When set, every route answers 503.
    down: Arc<AtomicBool>,
}

async fn stub_node(head_num: u64, payloads: HashMap<String, Vec<u8>>) -> StubNode {
    use base64::Engine;
    let down = Arc::new(AtomicBool::new(false));
    let up = {
        let down = Arc::clone(&down);
        warp::any()
            .and_then(move || {
                let down = down.load(Ordering::Relaxed);
                async move {
                    if down {
                        Err(warp::reject::not_found())
                    } else {
                        Ok(())
                    }
                }
            })
            .untuple_one()
    };
    let head = warp::get().and(warp::path!("blocks")).map(move || {
        warp::reply::json(&json!({"data": [{"header": {"block_num": head_num.to_string()}}]}))
    });
    let payloads = Arc::new(payloads);
    let transaction =
        warp::get()
            .and(warp::path!("transactions" / String))
            .map(move |id: String| match payloads.get(&id) {
                Some(payload) => warp::reply::with_status(
                    warp::reply::json(&json!({"data": {"header_signature": id,
                    "payload": base64::engine::general_purpose::STANDARD.encode(payload)}})),
                    warp::http::StatusCode::OK,
                ),
                None => warp::reply::with_status(
                    warp::reply::json(&json!({"error": {"code": 72}})),
                    warp::http::StatusCode::NOT_FOUND,
                ),
            });
    let batches = warp::post().and(warp::path!("batches")).map(|| {
        warp::reply::with_status(
            warp::reply::json(&json!({"link": "http://node/batch_statuses?id=b0b1"})),
            warp::http::StatusCode::ACCEPTED,
        )
    });
    let statuses = warp::get()
        .and(warp::path!("batch_statuses"))
        .and(warp::query::<HashMap<String, String>>())
        .map(|query: HashMap<String, String>| {
            let id = query.get("id").cloned().unwrap_or_default();
            warp::reply::json(
                &json!({"data": [{"id": id, "status": "COMMITTED", "invalid_transactions": []}],
                "link": format!("http://node/batch_statuses?id={id}")}),
            )
        });
    let unavailable = warp::any()
        .map(|| warp::reply::with_status("down", warp::http::StatusCode::SERVICE_UNAVAILABLE));
    let routes = up
        .and(head.or(transaction).or(batches).or(statuses))
        .map(|reply| Box::new(reply) as Box<dyn warp::Reply>)
        .or(unavailable.map(|reply| Box::new(reply) as Box<dyn warp::Reply>))
        .unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    StubNode { url, down }
}

// ---------------------------------------------------------------------------
// The story: the recorded scenario, a return shipment without a logger, and
// a blood bank and a hospital on the blood board.
// ---------------------------------------------------------------------------

struct Blood {
    bank: Signer,
    hospital: Signer,
}

fn organisation(ledger: &mut Ledger, org: &str, site_body: &str, role: Role) -> (Signer, String) {
    let admin = ledger.admin();
    let key = Signer::generate();
    let site = gln(site_body);
    let mut create = CreateOrganization::new();
    create.set_org_id(org.into());
    create.set_name(org.into());
    create.set_roles(vec![role]);
    let mut add = AddSite::new();
    add.set_org_id(org.into());
    add.set_gln(site.clone());
    add.set_name(format!("{org} site"));
    let mut agent = AddAgent::new();
    agent.set_org_id(org.into());
    agent.set_public_key(key.public_key().into());
    agent.set_name(format!("{org} agent"));
    agent.set_roles(vec![role]);
    ledger
        .submit(vec![
            registry(&admin, T0, R::create_organization(create)),
            registry(&admin, T0, R::add_site(add)),
            registry(&admin, T0, R::add_agent(agent)),
        ])
        .expect("organisation registers");
    (key, site)
}

fn blood_board(ledger: &mut Ledger) -> Blood {
    let (bank, bank_site) = organisation(ledger, "bank", "950110153006", Role::BLOOD_BANK);
    let (hospital, hospital_site) =
        organisation(ledger, "hospital", "950110153007", Role::HOSPITAL);
    let mut txns = Vec::new();
    for (id, abo, rh) in [
        ("W123427000001", AboGroup::O, RhD::NEGATIVE),
        ("W123427000002", AboGroup::A, RhD::POSITIVE),
    ] {
        let mut unit = RegisterBloodUnit::new();
        unit.set_donation_id(id.into());
        unit.set_component(BloodComponent::RED_CELLS);
        unit.set_abo(abo);
        unit.set_rh(rh);
        unit.set_volume_ml(280);
        unit.set_expiry_date(20301231);
        unit.set_site_gln(bank_site.clone());
        txns.push(registry(&bank, T0 + 20, R::register_blood_unit(unit)));
    }
    let mut request = FileEmergencyRequest::new();
    request.set_request_id("R1".into());
    request.set_component(BloodComponent::RED_CELLS);
    request.set_abo(AboGroup::A);
    request.set_rh(RhD::POSITIVE);
    request.set_units(2);
    request.set_needed_by_s(T0 + 7_200);
    request.set_priority(Priority::EMERGENCY);
    request.set_hospital_gln(hospital_site);
    txns.push(custody(
        &hospital,
        T0 + 20,
        C::file_emergency_request(request),
    ));
    ledger.submit(txns).expect("blood units and request");
    Blood { bank, hospital }
}

async fn feed(index: &Arc<dyn IndexStore>, ledger: &Ledger) {
    let lookup = ledger.lookup();
    for update in &ledger.blocks {
        let outcome = ingest(index.as_ref(), &lookup, update.clone())
            .await
            .expect("block ingested");
        assert_eq!(outcome, Ingested::Applied);
    }
}

/// An API on `index_url` serving the index as it is (no follower); nothing
/// listens at its component endpoint.
fn config(index_url: &str, rest_url: &str) -> ApiConfig {
    ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: rest_url.into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: index_url.into(),
        follow: false,
    }
}

async fn start(index_url: &str, rest_url: &str) -> ApiHandle {
    Api::start(config(index_url, rest_url))
        .await
        .expect("API starts")
}

async fn every_answer_matches_the_document(index_url: &str) {
    let mut ledger = Ledger::new();
    let p = scenario::full_story(&mut ledger);
    scenario::return_to_maker(&mut ledger, &p, "SH-RET", "L-OK", T0 + 13_000);
    let blood = blood_board(&mut ledger);
    let payloads: HashMap<String, Vec<u8>> = ledger
        .transactions
        .iter()
        .flatten()
        .map(|t| (t.id.clone(), t.payload.clone()))
        .collect();
    let node = stub_node(ledger.head().block_num, payloads).await;
    let api = start(index_url, &node.url).await;
    feed(&api.index(), &ledger).await;
    let base = api.url();

    // The served document is the library's, and the validator understands all of it.
    let served: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    assert_eq!(served, coldchain_api::openapi::document());
    let problems = lint_document(&served);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut c = Checker {
        base: base.clone(),
        document: served,
        seen: BTreeSet::new(),
    };

    // The page, its assets and the document.
    for (template, path) in [
        ("/", "/"),
        ("/index.html", "/index.html"),
        ("/blood", "/blood"),
        ("/app.js", "/app.js"),
        ("/style.css", "/style.css"),
        ("/openapi.json", "/openapi.json"),
    ] {
        c.check("GET", template, path, None).await;
    }

    // Status: with the node answering, then without it (nulls).
    let status = c
        .check("GET", "/api/v1/status", "/api/v1/status", None)
        .await;
    assert_eq!(status.json()["chain_head_num"], ledger.head().block_num);
    node.down.store(true, Ordering::Relaxed);
    let status = c
        .check("GET", "/api/v1/status", "/api/v1/status", None)
        .await;
    assert!(status.json()["chain_head_num"].is_null(), "{}", status.text);
    node.down.store(false, Ordering::Relaxed);

    // Verification: every verdict, by query and by Digital Link, and the web page.
    for query in [
        format!("gtin={GTIN}&serial=L-OK-S1"),
        format!("gtin={GTIN}&lot=L-OK&serial=L-OK-S2"),
        format!("gtin={GTIN}&serial=NOPE-S9"),
        format!("gtin={GTIN}&lot=L-NOPE"),
        format!("gtin={GTIN}&lot=L-HOT"),
        format!("gtin={GTIN}&lot=L-RECALL"),
        format!("gtin={GTIN}&lot=L-QUAR"),
        format!("gtin={GTIN}&lot=L-EXP&exp=240101"),
        format!("gtin={GTIN}&lot=L-OK&exp=291231"),
    ] {
        let answer = c
            .check(
                "GET",
                "/api/v1/verify",
                &format!("/api/v1/verify?{query}"),
                None,
            )
            .await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.text);
    }
    let links = [
        ("/01/{gtin}/10/{lot}", format!("/01/{GTIN}/10/L-OK")),
        (
            "/01/{gtin}/10/{lot}",
            format!("/01/{GTIN}/10/L-RECALL?17=301231"),
        ),
        ("/01/{gtin}/21/{serial}", format!("/01/{GTIN}/21/L-OK-S1")),
        ("/01/{gtin}/21/{serial}", format!("/01/{GTIN}/21/L-OK-S2")),
        (
            "/01/{gtin}/10/{lot}/21/{serial}",
            format!("/01/{GTIN}/10/L-HOT/21/L-HOT-S1"),
        ),
    ];
    for (template, path) in &links {
        let answer = c.check("GET", template, path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    // GS1 Lightweight Messaging verification requests: verified, not
    // verified with codes, and nothing of the serial on the ledger (no
    // responderGLN, no corrUUID sent).
    let vrs = "/vrs/01/{gtin}/10/{lot}/21/{serial}";
    for (template, path) in [
        (vrs, format!("/vrs/01/{GTIN}/10/L-OK/21/L-OK-S1?17=301231&linkType=verificationService&context=dscsaSaleableReturn&reqGLN=0614141000005&corrUUID=21f11c2b-4b0a-4b21-9a7b-5b2bd7e2f8a1")),
        (vrs, format!("/vrs/01/{GTIN}/10/L-RECALL/21/L-RECALL-S1?17=301231&reqGLN=0614141000005")),
        ("/vrs/gtin/{gtin}/lot/{lot}/ser/{serial}", format!("/vrs/gtin/{GTIN}/lot/L-NONE/ser/X1?exp=301231&reqGLN=0614141000005")),
    ] {
        let answer = c.check("GET", template, &path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    let answer = c
        .check(
            "GET",
            vrs,
            &format!("/vrs/01/{GTIN}/10/L-OK/21/L-OK-S1"),
            None,
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    for (template, path) in links
        .iter()
        .cloned()
        .chain([("/01/{gtin}", format!("/01/{GTIN}"))])
    {
        let answer = c
            .check_with("GET", template, &path, None, None, Some("text/html"))
            .await;
        assert_eq!(answer.media, "text/html", "{path}");
    }
    // A GTIN alone is refused in JSON (documented as 400, not a verdict).
    let answer = c
        .check("GET", "/01/{gtin}", &format!("/01/{GTIN}"), None)
        .await;
    assert_eq!(answer.status, 400);
    let answer = c
        .check("GET", "/api/v1/verify", "/api/v1/verify?lot=L-OK", None)
        .await;
    assert_eq!(answer.status, 400);

    // Health and metrics of this API (--no-follow: verdicts are given).
    let health = c.check("GET", "/health", "/health", None).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json()["following"], false, "{}", health.text);
    let metrics = c.check("GET", "/metrics", "/metrics", None).await;
    assert!(
        metrics
            .text
            .contains("# TYPE coldchain_api_verify_refused_total counter"),
        "{}",
        metrics.text
    );

    // An API on the same index whose follower cannot reach the node:
    // verification answers 503 cannot_verify_now, as documented.
    let stale_api = Api::start(ApiConfig {
        follow: true,
        ..config(index_url, &node.url)
    })
    .await
    .expect("API starts");
    let mut stale = Checker {
        base: stale_api.url(),
        document: c.document.clone(),
        seen: BTreeSet::new(),
    };
    for (template, path) in [
        (
            "/api/v1/verify",
            format!("/api/v1/verify?gtin={GTIN}&lot=L-OK"),
        ),
        ("/01/{gtin}/10/{lot}", format!("/01/{GTIN}/10/L-OK")),
        ("/01/{gtin}/21/{serial}", format!("/01/{GTIN}/21/L-OK-S1")),
        (
            "/01/{gtin}/10/{lot}/21/{serial}",
            format!("/01/{GTIN}/10/L-OK/21/L-OK-S1"),
        ),
        (
            "/vrs/01/{gtin}/10/{lot}/21/{serial}",
            format!("/vrs/01/{GTIN}/10/L-OK/21/L-OK-S1?17=301231&reqGLN=0614141000005"),
        ),
    ] {
        let answer = stale.check("GET", template, &path, None).await;
        assert_eq!(answer.status, 503, "{path}: {}", answer.text);
        assert_eq!(
            answer.json()["error"],
            "cannot_verify_now",
            "{}",
            answer.text
        );
        assert!(answer.headers.contains_key("retry-after"), "{path}");
    }
    let health = stale.check("GET", "/health", "/health", None).await;
    assert_eq!(health.status, 503, "{}", health.text);
    stale_api.stop().await;

    // Provenance and EPCIS, for callers who see different parts.
    let lots = "/api/v1/lots/{gtin}/{lot}";
    let epcis = "/api/v1/lots/{gtin}/{lot}/epcis";
    for (lot, who) in [
        ("L-OK", &p.maker),
        ("L-OK", &p.pharmacy),
        ("L-OK", &p.carrier),
        ("L-HOT", &p.regulator),
        ("L-RECALL", &p.maker),
        ("L-EXP", &p.maker),
    ] {
        let answer = c
            .check(
                "GET",
                lots,
                &format!("/api/v1/lots/{GTIN}/{lot}"),
                Some(who),
            )
            .await;
        assert_eq!(answer.status, 200, "{lot}: {}", answer.text);
        let answer = c
            .check(
                "GET",
                epcis,
                &format!("/api/v1/lots/{GTIN}/{lot}/epcis"),
                Some(who),
            )
            .await;
        assert_eq!(answer.status, 200, "{lot} EPCIS: {}", answer.text);
    }
    let hot = c
        .check(
            "GET",
            epcis,
            &format!("/api/v1/lots/{GTIN}/L-HOT/epcis"),
            Some(&p.regulator),
        )
        .await;
    assert!(
        hot.text.contains("ALARM_CONDITION"),
        "the alarm report is validated"
    );
    // Errors: anonymous, a stranger, an unknown lot, a bad GTIN.
    for (path, who, status) in [
        (format!("/api/v1/lots/{GTIN}/L-OK"), None, 401),
        (format!("/api/v1/lots/{GTIN}/L-OK"), Some(&p.stranger), 403),
        (format!("/api/v1/lots/{GTIN}/L-NOPE"), Some(&p.maker), 404),
        ("/api/v1/lots/123/L-OK".to_string(), Some(&p.maker), 400),
    ] {
        let answer = c.check("GET", lots, &path, who).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
    }

    // Readings: pages, a cursor, chart buckets, CSV, payload checks, no logger.
    let readings = "/api/v1/shipments/{id}/readings";
    let page = c
        .check(
            "GET",
            readings,
            "/api/v1/shipments/SH-COLD/readings",
            Some(&p.carrier),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let first = c
        .check(
            "GET",
            readings,
            "/api/v1/shipments/SH-COLD/readings?limit=3",
            Some(&p.carrier),
        )
        .await;
    let cursor = first.json()["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    c.check(
        "GET",
        readings,
        &format!("/api/v1/shipments/SH-COLD/readings?limit=3&after={cursor}"),
        Some(&p.carrier),
    )
    .await;
    for path in [
        "/api/v1/shipments/SH-HOT/readings?points=4",
        "/api/v1/shipments/SH-COLD/readings?points=2000&from=0&to=4000000000",
        "/api/v1/shipments/SH-HOT/readings?verify=payloads",
        "/api/v1/shipments/SH-RET/readings",
        "/api/v1/shipments/SH-RET/readings?points=10",
    ] {
        let answer = c.check("GET", readings, path, Some(&p.regulator)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    let csv = c
        .check(
            "GET",
            readings,
            "/api/v1/shipments/SH-COLD/readings?format=csv",
            Some(&p.carrier),
        )
        .await;
    assert_eq!(csv.media, "text/csv");
    let documented = &c.document["paths"][readings]["get"]["responses"]["200"]["headers"];
    for header in documented.as_object().expect("headers").keys() {
        assert!(
            csv.headers.contains_key(header.as_str()),
            "the CSV answer lacks the documented {header}"
        );
    }
    assert_eq!(
        csv.headers["x-coldchain-as-of-block-num"].to_str().ok(),
        Some(ledger.head().block_num.to_string().as_str())
    );
    // The node cannot be asked: each transaction reports its problem.
    node.down.store(true, Ordering::Relaxed);
    let unavailable = c
        .check(
            "GET",
            readings,
            "/api/v1/shipments/SH-COLD/readings?verify=payloads",
            Some(&p.carrier),
        )
        .await;
    assert_eq!(unavailable.json()["payloads"]["verified"], false);
    node.down.store(false, Ordering::Relaxed);
    for (path, status) in [
        ("/api/v1/shipments/SH-NOPE/readings", 404),
        ("/api/v1/shipments/SH-COLD/readings?limit=0", 400),
    ] {
        let answer = c.check("GET", readings, path, Some(&p.carrier)).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
    }

    // The blood board.
    for (template, path, who) in [
        (
            "/api/v1/blood/requests",
            "/api/v1/blood/requests",
            &blood.bank,
        ),
        (
            "/api/v1/blood/units",
            "/api/v1/blood/units",
            &blood.hospital,
        ),
        (
            "/api/v1/blood/units",
            "/api/v1/blood/units?component=red_cells&abo=A&rh=%2B",
            &blood.hospital,
        ),
    ] {
        let answer = c.check("GET", template, path, Some(who)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    let requests = c
        .check(
            "GET",
            "/api/v1/blood/requests",
            "/api/v1/blood/requests",
            Some(&blood.hospital),
        )
        .await;
    assert_eq!(
        requests.json()["requests"].as_array().map(Vec::len),
        Some(1)
    );
    // What a label scanner reads names one unit (ISBT 128 DIN bar code, or the
    // DIN typed with its check character); the DIN comes back as printed.
    for query in ["unit=%3DW12342700000100", "unit=W1234%2027%20000001%206"] {
        let path = format!("/api/v1/blood/units?{query}");
        let scanned = c
            .check("GET", "/api/v1/blood/units", &path, Some(&blood.hospital))
            .await;
        assert_eq!(scanned.status, 200, "{path}: {}", scanned.text);
        let units = scanned.json()["units"].clone();
        assert_eq!(units.as_array().map(Vec::len), Some(1), "{path}: {units}");
        assert_eq!(units[0]["donation_id"], "W123427000001");
        assert_eq!(units[0]["din_label"], "W1234 27 000001 [6]");
        assert_eq!(units[0]["check_character"], "6");
    }
    let mistyped = c
        .check(
            "GET",
            "/api/v1/blood/units",
            "/api/v1/blood/units?unit=W123427000001K",
            Some(&blood.hospital),
        )
        .await;
    assert_eq!(mistyped.status, 400, "{}", mistyped.text);
    assert!(mistyped.text.contains("gives '6'"), "{}", mistyped.text);

    // Batches (to the stub node), tokens, the audit log.
    let body: &'static [u8] = b"\x0a\x00";
    for (path, status) in [("/api/v1/batches", 202), ("/api/v1/batches?wait=1", 200)] {
        let answer = c
            .check_with(
                "POST",
                "/api/v1/batches",
                path,
                Some(&p.carrier),
                Some(body),
                None,
            )
            .await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text);
        let json: serde_json::Value = serde_json::from_str(&answer.text).expect("JSON");
        assert_eq!(json["batch_ids"], json!(["b0b1"]), "{path}: {json}");
        // The node's own address is not the caller's business.
        assert!(
            !answer.text.contains("batch_statuses") && !answer.text.contains("http://node"),
            "{path}: {json}"
        );
    }
    let answer = c
        .check_with(
            "POST",
            "/api/v1/batches",
            "/api/v1/batches",
            Some(&p.carrier),
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, 400, "empty body: {}", answer.text);
    node.down.store(true, Ordering::Relaxed);
    let answer = c
        .check_with(
            "POST",
            "/api/v1/batches",
            "/api/v1/batches",
            Some(&p.carrier),
            Some(body),
            None,
        )
        .await;
    assert_eq!(answer.status, 502, "node down: {}", answer.text);
    node.down.store(false, Ordering::Relaxed);
    let token = c
        .check(
            "POST",
            "/api/v1/tokens",
            "/api/v1/tokens?label=schema",
            Some(&p.pharmacy),
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.text);
    let answer = c
        .check("POST", "/api/v1/tokens", "/api/v1/tokens", None)
        .await;
    assert_eq!(answer.status, 401);
    for (path, who) in [
        ("/api/v1/audit", &p.maker),
        ("/api/v1/audit?limit=5", &p.stranger),
        ("/api/v1/audit", &p.regulator),
    ] {
        let answer = c.check("GET", "/api/v1/audit", path, Some(who)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }

    c.assert_every_success_answer_seen();
    api.stop().await;
}

#[tokio::test]
async fn sqlite_answers_match_the_served_openapi_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    every_answer_matches_the_document(&format!(
        "sqlite://{}",
        dir.path().join("index.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_answers_match_the_served_openapi_schemas() {
    let test = "openapi_schemas";
    drop_postgres_schema(test).await;
    every_answer_matches_the_document(&postgres_url(test)).await;
    drop_postgres_schema(test).await;
}

/// The validator itself: it accepts what the schema says and refuses a
/// missing required field, a wrong type, an undocumented field, a bad enum
/// value and a null where none is allowed.
#[test]
fn the_validator_refuses_what_the_schema_does_not_allow() {
    let document = coldchain_api::openapi::document();
    let doc = Document(&document);
    let block =
        json!({"block_id": "ab", "block_num": 3, "previous_block_id": "aa", "state_root": "r"});
    let valid = json!({"verdict": "unknown", "reasons": ["no lot"], "gtin": GTIN, "lot": null, "serial": null,
        "lot_record": null, "expiry_on_pack": null, "as_of_block": block, "index_lag_blocks": 0, "evidence": [], "lot_versions": []});
    let schema = json!({"$ref": "#/components/schemas/Verification"});
    let errors = |value: &Value| {
        let mut found = Vec::new();
        doc.validate(&schema, value, "$", &mut found);
        found
    };
    assert_eq!(errors(&valid), Vec::<String>::new());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut value = valid.clone();
        edit(&mut value);
        errors(&value)
    };
    assert!(!broken(&|v| {
        v.as_object_mut().expect("object").remove("reasons");
    })
    .is_empty());
    assert!(!broken(&|v| v["gtin"] = json!(9501101530003u64)).is_empty());
    assert!(!broken(&|v| v["surprise"] = json!(1)).is_empty());
    assert!(!broken(&|v| v["verdict"] = json!("fine")).is_empty());
    assert!(!broken(&|v| v["evidence"] = Value::Null).is_empty());
    assert!(!broken(&|v| v["as_of_block"]["block_num"] = json!(1.5)).is_empty());
    assert!(!broken(&|v| v["as_of_block"]["extra"] = json!("x")).is_empty());
    // A refusal is not an Error body (it has the lag fields), nor a verdict.
    let refusals = json!({"oneOf": [{"$ref": "#/components/schemas/CannotVerifyNow"}, {"$ref": "#/components/schemas/Error"}]});
    let refusal = json!({"error": "cannot_verify_now", "message": "m", "state": "stuck", "reason": "r", "retry_after_s": 5,
        "index_head": 67, "chain_head_num": 135, "lag_blocks": 68, "lag_seconds": 40.5, "seconds_since_contact": 0.2});
    for (body, valid) in [
        (refusal.clone(), true),
        (json!({"error": "index_unavailable", "message": "m"}), true),
        (
            json!({"error": "cannot_verify_now", "message": "m", "state": "stuck"}),
            false,
        ),
        (json!({"verdict": "unknown"}), false),
    ] {
        let mut found = Vec::new();
        doc.validate(&refusals, &body, "$", &mut found);
        assert_eq!(found.is_empty(), valid, "{body}: {found:?}");
    }
    // oneOf: a readings page is not also a chart.
    let readings = json!({"oneOf": [{"$ref": "#/components/schemas/ReadingsPage"}, {"$ref": "#/components/schemas/ReadingsChart"}]});
    let chain = json!({"batches": 0, "recomputed_head": "", "on_chain_head": "", "intact": true});
    let page = json!({"shipment_id": "S", "as_of_block": null, "profile": null, "thermal": null, "chain": chain,
        "evidence": [], "readings": [], "next_cursor": null});
    let mut found = Vec::new();
    doc.validate(&readings, &page, "$", &mut found);
    assert_eq!(found, Vec::<String>::new());
    let mut both = page.clone();
    both["buckets"] = json!([]);
    let mut found = Vec::new();
    doc.validate(&readings, &both, "$", &mut found);
    assert!(!found.is_empty(), "a page with buckets matches neither");
}
