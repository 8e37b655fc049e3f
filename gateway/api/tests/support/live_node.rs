//! The embedded node (`coldchain-node`) in-process for API tests: a node with
//! the coldchain families, and the test story submitted to it as signed
//! batches over its REST API. Declared by the tests that use it
//! (`#[path = "support/live_node.rs"] mod live_node;`), so the other test
//! binaries do not build it.
use std::sync::Arc;
use std::time::Duration;

use coldchain_node::genesis::GenesisSettings;
use coldchain_node::node::{Node, NodeConfig, NodeHandle};
use coldchain_node::testing::http;
use coldchain_processors::signing::{batch_list_bytes, sign_batch, sign_transaction, Signer};

use crate::support::{Chain, Tx};

pub struct LiveNode {
    pub rest: String,
    pub admin: Signer,
}

impl Chain for LiveNode {
    fn admin(&self) -> Signer {
        self.admin.clone()
    }

    fn submit(&mut self, txns: Vec<Tx<'_>>) -> Result<(), String> {
        self.submit_ids(txns).map(|_| ())
    }
}

impl LiveNode {
    /// Commits the transactions as one batch and returns their ids.
    pub fn submit_ids(&mut self, txns: Vec<Tx<'_>>) -> Result<Vec<String>, String> {
        let transactions = txns
            .into_iter()
            .map(|tx| {
                sign_transaction(tx.spec, tx.signer, self.admin.public_key())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<String> = transactions
            .iter()
            .map(|t| t.get_header_signature().to_string())
            .collect();
        let batch = sign_batch(transactions, &self.admin).map_err(|e| e.to_string())?;
        let id = batch.get_header_signature().to_string();
        let body = batch_list_bytes(vec![batch]).map_err(|e| e.to_string())?;
        let reply = http::post_batches(&self.rest, &body).map_err(|e| e.to_string())?;
        if reply.status != 202 {
            return Err(format!(
                "POST /batches answered {}: {}",
                reply.status,
                reply.json()
            ));
        }
        for _ in 0..50 {
            let reply = http::get(&self.rest, &format!("/batch_statuses?id={id}&wait=5"))
                .map_err(|e| e.to_string())?;
            let status = reply.json();
            match status["data"][0]["status"].as_str() {
                Some("COMMITTED") => return Ok(ids),
                Some("INVALID") => return Err(format!("batch invalid: {status}")),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Err(format!("batch {id} not committed in time"))
    }
}

pub fn start_node(dir: &std::path::Path, admin: &Signer) -> NodeHandle {
    let mut config = NodeConfig::new(dir);
    config.rest_api = "127.0.0.1:0".parse().expect("addr");
    config.component = "tcp://127.0.0.1:*".into();
    config.genesis = GenesisSettings(
        [(
            "coldchain.admins".to_string(),
            admin.public_key().to_string(),
        )]
        .into_iter()
        .collect(),
    );
    config.handlers = vec![
        Arc::new(coldchain_processors::registry::RegistryHandler::new()),
        Arc::new(coldchain_processors::custody::CustodyHandler::new()),
        Arc::new(coldchain_processors::sensor::SensorHandler::new()),
    ];
    Node::start(config).expect("node starts")
}
