//! The OpenAPI document and the router describe the same API: every route in
//! `routes::ROUTES` is in `/openapi.json` (same methods) and vice versa, every
//! one is served (a sample request is answered by its handler, whatever the
//! status, never "no such endpoint"), and other methods and neighbouring paths
//! are not (under `/vrs`, the GS1 Lightweight Messaging base, another method
//! answers 405).
mod support;

use std::collections::BTreeSet;

use coldchain_api::routes::ROUTES;
use coldchain_api::{Api, ApiConfig};

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// A template with sample values for its parameters.
fn sample(template: &str) -> String {
    template
        .replace("{gtin}", "09501101530003")
        .replace("{lot}", "L1")
        .replace("{serial}", "S1")
        .replace("{id}", "S1")
}

fn documented() -> BTreeSet<(String, String)> {
    let document = coldchain_api::openapi::document();
    let paths = document["paths"].as_object().expect("paths");
    let mut routes = BTreeSet::new();
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

fn served() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect()
}

/// True when the router has no endpoint for `method path`.
async fn no_such_endpoint(base: &str, method: &str, path: &str) -> bool {
    let response = reqwest::Client::new()
        .request(method.parse().expect("method"), format!("{base}{path}"))
        .send()
        .await
        .expect("API answers");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    status == 404
        && body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no such endpoint"))
}

#[test]
fn every_served_route_is_documented_and_every_documented_one_served() {
    let (documented, served) = (documented(), served());
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "in /openapi.json but not served"
    );
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not in /openapi.json"
    );
}

#[test]
fn the_audit_key_parameter_is_documented() {
    let document = coldchain_api::openapi::document();
    let names: Vec<&str> = document["paths"]["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["limit", "key"]);
}

#[tokio::test]
async fn the_router_serves_exactly_the_listed_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: "http://127.0.0.1:9".into(),
        component: "tcp://127.0.0.1:9".into(),
        index_url: format!("sqlite://{}", dir.path().join("index.db").display()),
        follow: false,
    })
    .await
    .expect("API starts");
    let base = api.url();
    let served = served();
    for (method, template) in &served {
        assert!(
            !no_such_endpoint(&base, method, &sample(template)).await,
            "{method} {template} is listed but the router does not serve it"
        );
    }
    // Every method on every listed path, and on each path's parents and
    // children: served exactly when listed. (For /01 and below the Digital
    // Link parser answers every GET itself, with 400 bad_digital_link for
    // shapes it does not know, so only other methods are probed there.)
    let mut probes = BTreeSet::new();
    for (_, template) in &served {
        let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        for end in 1..=segments.len() {
            probes.insert(format!("/{}", segments[..end].join("/")));
        }
        probes.insert(format!("{}/x", template.trim_end_matches('/')));
    }
    for path in &probes {
        for method in METHODS {
            let listed = served.contains(&(method.to_string(), path.clone()));
            if (path == "/01" || path.starts_with("/01/")) && method == "GET" {
                continue;
            }
            // GS1 Lightweight Messaging: the request parser answers every GET
            // (400 for shapes it does not know), and another method 405 as
            // the standard's status table says, never "no such endpoint".
            if path == "/vrs" || path.starts_with("/vrs/") {
                if method != "GET" {
                    let status = reqwest::Client::new()
                        .request(
                            method.parse().expect("method"),
                            format!("{base}{}", sample(path)),
                        )
                        .send()
                        .await
                        .expect("API answers")
                        .status()
                        .as_u16();
                    assert_eq!(status, 405, "{method} {path}");
                }
                continue;
            }
            let missing = no_such_endpoint(&base, method, &sample(path)).await;
            assert_eq!(
                missing, !listed,
                "{method} {path}: listed {listed}, router answers no-such-endpoint {missing}"
            );
        }
    }
    api.stop().await;
}
