//! Measures the external-TP path of the component endpoint: transactions per
//! second applied through a real SDK processor (the `component_intkey_tp`
//! example, run as a child process) over ZeroMQ, each doing one state read,
//! one write, one event and one receipt entry, against an in-memory context.
//!
//! Usage: `cargo run --release -p coldchain-node --example component_tp_bench -- [transactions]`
//! (build the TP first: `cargo build --release -p coldchain-node --example component_intkey_tp`).
//! A benchmark, not a test: it prints numbers and checks nothing but success.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldchain_node::chain_feed::{ChainFeed, ChainFeedError, CommittedBlock};
use coldchain_node::component::ComponentEndpoint;
use coldchain_node::handlers::HandlerRegistry;
use protobuf::RepeatedField;
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::processor::handler::{ContextError, TransactionContext};
use tokio::sync::broadcast;

/// No chain: the benchmark exercises only the TP path.
struct NoChain(broadcast::Sender<Arc<CommittedBlock>>);

impl ChainFeed for NoChain {
    fn chain_head(&self) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        Ok(None)
    }
    fn block_by_id(&self, _: &str) -> Result<Option<Arc<CommittedBlock>>, ChainFeedError> {
        Ok(None)
    }
    fn blocks_after(&self, _: u64, _: usize) -> Result<Vec<Arc<CommittedBlock>>, ChainFeedError> {
        Ok(Vec::new())
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.0.subscribe()
    }
}

#[derive(Default)]
struct Scratch {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    events: RefCell<usize>,
}

impl TransactionContext for Scratch {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        let state = self.state.borrow();
        Ok(addresses
            .iter()
            .filter_map(|a| state.get(a).map(|v| (a.clone(), v.clone())))
            .collect())
    }
    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        self.state.borrow_mut().extend(entries);
        Ok(())
    }
    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        let mut state = self.state.borrow_mut();
        Ok(addresses
            .iter()
            .filter(|a| state.remove(*a).is_some())
            .cloned()
            .collect())
    }
    fn add_receipt_data(&self, _: &[u8]) -> Result<(), ContextError> {
        Ok(())
    }
    fn add_event(&self, _: String, _: Vec<(String, String)>, _: &[u8]) -> Result<(), ContextError> {
        *self.events.borrow_mut() += 1;
        Ok(())
    }
}

fn request(payload: String) -> TpProcessRequest {
    let mut header = TransactionHeader::new();
    header.set_family_name("intkey".into());
    header.set_family_version("1.0".into());
    header.set_inputs(RepeatedField::from_vec(vec!["1cf126".into()]));
    header.set_outputs(RepeatedField::from_vec(vec!["1cf126".into()]));
    let mut request = TpProcessRequest::new();
    request.set_header(header);
    request.set_payload(payload.into_bytes());
    request
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let transactions: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let registry = HandlerRegistry::new();
    let feed = Arc::new(NoChain(broadcast::channel(1).0));
    let endpoint = ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), feed)?;
    let tp_path = std::env::current_exe()?.with_file_name("component_intkey_tp");
    let mut tp = Command::new(&tp_path)
        .arg(endpoint.endpoint())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}); build the component_intkey_tp example first",
                tp_path.display()
            )
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !registry.has_external("intkey", "1.0") {
        if Instant::now() > deadline {
            let _ = tp.kill();
            return Err("the TP did not register within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let handler = registry
        .route("intkey", "1.0")
        .ok_or("intkey is not routed")?;
    let mut context = Scratch::default();
    let mut latencies = Vec::with_capacity(transactions);
    let started = Instant::now();
    for n in 0..transactions {
        let payload = if n % 2 == 0 {
            format!("set k{} {n}", n % 1000)
        } else {
            format!("inc k{} 1", (n - 1) % 1000)
        };
        let t = Instant::now();
        handler
            .apply(&request(payload), &mut context)
            .map_err(|e| format!("transaction {n}: {e}"))?;
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{transactions} transactions through an external SDK TP in {:.2} s: {:.0} tx/s (one at a time), \
         latency p50 {:?} p99 {:?}; {} events",
        elapsed.as_secs_f64(),
        transactions as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        context.events.borrow()
    );
    let _ = tp.kill();
    let _ = tp.wait();
    endpoint.shutdown();
    Ok(())
}
