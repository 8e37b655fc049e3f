//! End to end with the embedded node (`coldchain-node`): the story is
//! submitted as signed batches to the node's REST API; the API follows the
//! node over its ZeroMQ component endpoint, catches up after being down, and
//! serves verdicts, provenance and readings whose hash chain matches the
//! node's ThermalRecord. On SQLite and PostgreSQL.
#[path = "support/live_node.rs"]
mod live_node;
mod support;

use std::time::Duration;

use coldchain_api::access::signed_message;
use coldchain_api::{Api, ApiConfig, ApiHandle};
use coldchain_node::node::NodeHandle;
use coldchain_node::testing::http;
use coldchain_processors::messages::coldchain::{
    CustodyPayload_oneof_action, DispensePack, LotStatus,
};
use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction, Signer};
use live_node::{start_node, LiveNode};
use support::http::{get, signed_get, token_for, wait_until_fresh};
use support::scenario::{self, GTIN};
use support::{drop_postgres_schema, postgres_client, postgres_schema_of, postgres_url};

/// The index under test, and how the test alters one of its readings chunks.
enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(&'static str),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("sqlite://{}", path.display()),
            Store::Postgres(test) => postgres_url(test),
        }
    }

    /// The first SH-COLD chunk: (transaction id, blob).
    async fn first_cold_chunk(&self) -> (String, Vec<u8>) {
        const FIRST: &str = "SELECT txn_id, readings FROM reading_chunks WHERE shipment_id = 'SH-COLD' ORDER BY first_time_s LIMIT 1";
        match self {
            Store::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).expect("index file");
                db.busy_timeout(Duration::from_secs(10)).expect("timeout");
                db.query_row(FIRST, [], |row| Ok((row.get(0)?, row.get(1)?)))
                    .expect("a chunk")
            }
            Store::Postgres(test) => {
                let client = postgres_client().await;
                client
                    .batch_execute(&format!("SET search_path TO {}", postgres_schema_of(test)))
                    .await
                    .expect("schema");
                let row = client.query_one(FIRST, &[]).await.expect("a chunk");
                (row.get(0), row.get(1))
            }
        }
    }

    async fn replace_chunk(&self, txn_id: &str, blob: Vec<u8>) {
        const UPDATE: &str = "UPDATE reading_chunks SET readings = $1 WHERE txn_id = $2";
        match self {
            Store::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).expect("index file");
                db.busy_timeout(Duration::from_secs(10)).expect("timeout");
                db.execute(
                    "UPDATE reading_chunks SET readings = ?1 WHERE txn_id = ?2",
                    rusqlite::params![blob, txn_id],
                )
                .expect("altered");
            }
            Store::Postgres(test) => {
                let client = postgres_client().await;
                client
                    .batch_execute(&format!("SET search_path TO {}", postgres_schema_of(test)))
                    .await
                    .expect("schema");
                client
                    .execute(UPDATE, &[&blob, &txn_id])
                    .await
                    .expect("altered");
            }
        }
    }
}

async fn start_api(node: &NodeHandle, index_url: &str) -> ApiHandle {
    Api::start(ApiConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        rest_url: node.rest_url(),
        component: node.component_endpoint().to_string(),
        index_url: index_url.into(),
        follow: true,
    })
    .await
    .expect("API starts")
}

async fn wait_until_caught_up(api: &ApiHandle, rest: &str) {
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let chain = http::get(rest, "/blocks?limit=1")
            .expect("node REST")
            .json();
        let head = chain["data"][0]["header_signature"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if api
            .index()
            .head()
            .await
            .expect("index")
            .is_some_and(|h| h.block_id == head)
        {
            // Verdicts are given once the API knows its index is current.
            wait_until_fresh(&api.url(), 15).await;
            return;
        }
        last = get(&api.url(), "/api/v1/status").await.1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("index never caught up with the node: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_api_follows_the_embedded_node_and_catches_up_after_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Sqlite(dir.path().join("index.db"));
    follows_the_embedded_node(dir.path(), &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_api_follows_the_embedded_node_and_catches_up_after_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop_postgres_schema("node_e2e").await;
    follows_the_embedded_node(dir.path(), &Store::Postgres("node_e2e")).await;
    drop_postgres_schema("node_e2e").await;
}

async fn follows_the_embedded_node(dir: &std::path::Path, store: &Store) {
    let admin = Signer::generate();
    let node = start_node(&dir.join("node"), &admin);
    let rest = node.rest_url();
    let mut live = LiveNode {
        rest: rest.clone(),
        admin,
    };
    let parties = tokio::task::block_in_place(|| scenario::register(&mut live));
    let index_url = store.url();

    let api = start_api(&node, &index_url).await;
    wait_until_caught_up(&api, &rest).await;
    assert_eq!(
        get(&api.url(), &format!("/01/{GTIN}/10/L-OK")).await.1["verdict"],
        "authentic_in_spec"
    );
    api.stop().await;

    // The API is down while the story goes on.
    tokio::task::block_in_place(|| {
        scenario::ship_to_carrier(
            &mut live,
            &parties,
            "SH-COLD",
            "L-OK",
            "D1",
            scenario::T0 + 100,
        );
        scenario::ship_to_carrier(
            &mut live,
            &parties,
            "SH-HOT",
            "L-HOT",
            "D2",
            scenario::T0 + 100,
        );
        scenario::record(
            &mut live,
            &parties,
            "D1",
            "SH-COLD",
            1,
            scenario::T0 + 200,
            &[500, 520, 480, 510],
        );
        scenario::record(
            &mut live,
            &parties,
            "D2",
            "SH-HOT",
            1,
            scenario::T0 + 200,
            &[500, 1200, 1200, 1200, 1200, 1200, 1200, 500],
        );
        scenario::record(
            &mut live,
            &parties,
            "D1",
            "SH-COLD",
            5,
            scenario::T0 + 200 + 4 * 600,
            &[505, 495],
        );
        scenario::deliver(&mut live, &parties, "SH-COLD", scenario::T0 + 10_000, false);
        scenario::change_status(
            &mut live,
            &parties.maker,
            "L-RECALL",
            LotStatus::RECALLED,
            "contamination found",
            scenario::T0 + 12_000,
        );
    });

    let api = start_api(&node, &index_url).await;
    wait_until_caught_up(&api, &rest).await;
    let base = api.url();
    let verdict = |path: String| {
        let base = base.clone();
        async move {
            get(&base, &path).await.1["verdict"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    assert_eq!(
        verdict(format!("/01/{GTIN}/10/L-OK/21/L-OK-S1")).await,
        "authentic_in_spec"
    );
    assert_eq!(verdict(format!("/01/{GTIN}/10/L-HOT")).await, "compromised");
    assert_eq!(verdict(format!("/01/{GTIN}/10/L-RECALL")).await, "recalled");
    assert_eq!(verdict(format!("/01/{GTIN}/10/L-EXP")).await, "expired");

    let token = token_for(&base, &parties.pharmacy).await;
    let provenance: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/lots/{GTIN}/L-OK"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let hands: Vec<String> = provenance["custody"]
        .as_array()
        .expect("custody")
        .iter()
        .map(|h| {
            format!(
                "{}>{}",
                h["from_org_id"].as_str().unwrap_or(""),
                h["to_org_id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(hands, vec!["maker>carrier", "carrier>pharmacy"]);

    // The node's ThermalRecord head is reproduced from the indexed payloads.
    let (status, readings) = signed_get(
        &base,
        "/api/v1/shipments/SH-COLD/readings",
        &parties.carrier,
    )
    .await;
    assert_eq!(status, 200, "{readings}");
    assert_eq!(readings["chain"]["batches"], 2);
    assert_eq!(readings["chain"]["intact"], true, "{readings}");
    assert_eq!(readings["readings"].as_array().map(Vec::len), Some(6));
    let (status, _) = signed_get(
        &base,
        &format!("/api/v1/lots/{GTIN}/L-OK"),
        &parties.stranger,
    )
    .await;
    assert_eq!(status, 403);

    // The pharmacy dispenses a pack through the API's batch pass-through.
    let mut dispense = DispensePack::new();
    dispense.set_gtin(GTIN.into());
    dispense.set_serial("L-OK-S2".into());
    dispense.set_site_gln(scenario::site("pharmacy"));
    let tx = support::custody(
        &parties.pharmacy,
        scenario::T0 + 11_000,
        CustodyPayload_oneof_action::dispense_pack(dispense),
    );
    let transaction = sign_transaction(tx.spec, &parties.pharmacy, parties.pharmacy.public_key())
        .expect("signed");
    let body = batch_list_bytes(vec![
        sign_batch(vec![transaction], &parties.pharmacy).expect("batch")
    ])
    .expect("bytes");
    let timestamp = support::http::now_s().to_string();
    let signature = parties
        .pharmacy
        .sign(signed_message("POST", "/api/v1/batches", "wait=10", &timestamp).as_bytes());
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/batches?wait=10"))
        .header("X-Coldchain-Key", parties.pharmacy.public_key())
        .header("X-Coldchain-Timestamp", timestamp)
        .header("X-Coldchain-Signature", signature)
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    let submitted: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        submitted["statuses"][0]["status"], "COMMITTED",
        "{submitted}"
    );
    wait_until_caught_up(&api, &rest).await;
    assert_eq!(
        verdict(format!("/01/{GTIN}/10/L-OK/21/L-OK-S2")).await,
        "already_dispensed"
    );

    // A recall and readings in one block: the readings transaction declares
    // every lot as an output, the node's receipts say the recall wrote L-QUAR.
    let ids = tokio::task::block_in_place(|| {
        let mut change = coldchain_processors::messages::coldchain::ChangeLotStatus::new();
        let mut lot = coldchain_processors::messages::coldchain::LotRef::new();
        lot.set_gtin(GTIN.into());
        lot.set_lot("L-QUAR".into());
        change.set_lot(lot);
        change.set_status(LotStatus::RECALLED);
        change.set_reason("sterility".into());
        live.submit_ids(vec![
            support::registry(
                &parties.maker,
                scenario::T0 + 13_000,
                coldchain_processors::messages::coldchain::RegistryPayload_oneof_action::change_lot_status(change),
            ),
            support::readings(
                &parties.gateway,
                "carrier",
                "D2",
                "SH-HOT",
                &[(9, scenario::T0 + 13_000, 500)],
            ),
        ])
        .expect("recall and readings in one batch")
    });
    wait_until_caught_up(&api, &rest).await;
    let (_, body) = get(&base, &format!("/api/v1/verify?gtin={GTIN}&lot=L-QUAR")).await;
    assert_eq!(body["verdict"], "recalled", "{body}");
    assert_eq!(body["evidence"][0]["record"], "lot", "{body}");
    assert_eq!(
        body["evidence"][0]["transaction_id"],
        ids[0].as_str(),
        "{body}"
    );
    let (_, body) = get(&base, &format!("/api/v1/verify?gtin={GTIN}&lot=L-HOT")).await;
    let thermal = body["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|e| e["record"] == "goods_thermal")
        .expect("thermal evidence")
        .clone();
    assert_eq!(thermal["transaction_id"], ids[1].as_str(), "{body}");

    // verify=payloads: the served rows against the payloads the node holds.
    let path = "/api/v1/shipments/SH-COLD/readings?verify=payloads";
    let (status, checked) = signed_get(&base, path, &parties.carrier).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["payloads"]["verified"], true, "{checked}");
    let transactions = checked["payloads"]["transactions"]
        .as_array()
        .expect("per transaction");
    assert_eq!(transactions.len(), 2, "{checked}");
    assert!(transactions.iter().all(|t| t["digest_matches"] == true
        && t["rows_match"] == true
        && t["payload_found"] == true));
    assert_eq!(
        transactions
            .iter()
            .filter_map(|t| t["rows_checked"].as_u64())
            .sum::<u64>(),
        6
    );

    // Alter one indexed reading: the digest chain still holds (it is computed
    // from stored digests), the payload check catches the altered row.
    let (txn_id, blob) = store.first_cold_chunk().await;
    let mut altered = coldchain_api::index::chunk::decode(&blob).expect("chunk");
    altered[0].temperature_cdeg -= 300;
    let blob = coldchain_api::index::chunk::encode(&altered)
        .expect("chunk")
        .blob;
    store.replace_chunk(&txn_id, blob).await;
    let (status, checked) = signed_get(&base, path, &parties.carrier).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["chain"]["intact"], true, "{checked}");
    assert_eq!(checked["payloads"]["verified"], false, "{checked}");
    let bad: Vec<&serde_json::Value> = checked["payloads"]["transactions"]
        .as_array()
        .expect("per transaction")
        .iter()
        .filter(|t| t["rows_match"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{checked}");
    assert_eq!(bad[0]["transaction_id"], txn_id.as_str());
    assert_eq!(bad[0]["digest_matches"], true);
    api.stop().await;
    node.shutdown();
}
