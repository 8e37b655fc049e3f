//! Starting and stopping a node: open (or create) the chain, check that the
//! rebuilt state matches the head block, start the publisher thread, the REST
//! API and the component endpoint, and stop them again.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use coldchain_processors::signing::Signer;
use protobuf::Message;
use sawtooth_sdk::messages::block::BlockHeader;

use crate::chain::Chain;
use crate::component::{ComponentEndpoint, ComponentHandle};
use crate::genesis::{self, GenesisSettings, NULL_BLOCK_ID};
use crate::handlers::{HandlerRegistry, SharedHandler};
use crate::intake::Intake;
use crate::merkle::StateTree;
use crate::publisher::{PublishLimits, Publisher, CONSENSUS};
use crate::rest::{self, RestContext};
use crate::store::{self, BlockRecord, BlockSummary};

/// Everything a node needs to start.
#[derive(Clone)]
pub struct NodeConfig {
    /// Holds `chain.sqlite` (and `validator.priv` unless `key_file` is set).
    pub data_dir: PathBuf,
    /// REST API bind address (port 0 picks a free port).
    pub rest_api: SocketAddr,
    /// ZeroMQ component endpoint, e.g. `tcp://127.0.0.1:4004`.
    pub component: String,
    /// Initial settings; used only when the chain is created.
    pub genesis: GenesisSettings,
    /// The node's signing key file (created if absent).
    pub key_file: Option<PathBuf>,
    pub max_batches_per_block: usize,
    pub max_block_wait: Duration,
    /// Most batches waiting for a block before `POST /batches` answers 429.
    pub queue_capacity: usize,
    /// Handlers run in-process (external TPs may add or override families).
    pub handlers: Vec<SharedHandler>,
    /// Extra state leaves for the genesis block besides the settings (for
    /// benchmarks, tests and migrations); used only when the chain is created.
    pub genesis_leaves: Vec<(String, Vec<u8>)>,
}

impl NodeConfig {
    /// Defaults that work on one machine, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            rest_api: SocketAddr::from(([127, 0, 0, 1], 8008)),
            component: "tcp://127.0.0.1:4004".to_string(),
            genesis: GenesisSettings::default(),
            key_file: None,
            max_batches_per_block: 500,
            max_block_wait: Duration::from_millis(2),
            queue_capacity: 2000,
            handlers: Vec::new(),
            genesis_leaves: Vec::new(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data directory {path}: {detail}")]
    DataDir { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Genesis(#[from] genesis::GenesisError),
    #[error(transparent)]
    Tree(#[from] crate::merkle::TreeError),
    #[error("the state rebuilt from {db} has root {rebuilt}, but head block {block_num} ({block_id}) records {recorded}; the database is damaged. Restore it from a backup or start with an empty data directory")]
    StateMismatch {
        db: String,
        rebuilt: String,
        recorded: String,
        block_num: u64,
        block_id: String,
    },
    #[error("cannot start the REST API on {addr}: {detail}")]
    Rest { addr: String, detail: String },
    #[error("cannot start the component endpoint on {endpoint}: {detail}")]
    Component { endpoint: String, detail: String },
}

/// The node process parts; see [`Node::start`].
pub struct Node;

/// A running node. Dropping it without [`NodeHandle::shutdown`] stops it too.
pub struct NodeHandle {
    rest_addr: SocketAddr,
    component: String,
    public_key: String,
    intake: Arc<Intake>,
    chain: Arc<Chain>,
    registry: HandlerRegistry,
    publisher: Option<JoinHandle<()>>,
    rest_stop: Option<tokio::sync::oneshot::Sender<()>>,
    rest_thread: Option<JoinHandle<()>>,
    component_handle: Option<ComponentHandle>,
}

impl Node {
    /// Opens or creates the chain in `config.data_dir` and starts serving.
    pub fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::DataDir {
            path: config.data_dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let key_path = config
            .key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("validator.priv"));
        let signer = genesis::load_or_create_key(&key_path)?;
        let db_path = config.data_dir.join("chain.sqlite");
        let mut conn = store::open(&db_path)?;
        let (head, tree) = match store::head(&conn)? {
            Some(head) => {
                let tree = StateTree::from_leaves(store::all_leaves(&conn)?)?;
                if tree.root() != head.state_root_hash {
                    return Err(NodeError::StateMismatch {
                        db: db_path.display().to_string(),
                        rebuilt: tree.root(),
                        recorded: head.state_root_hash,
                        block_num: head.block_num,
                        block_id: head.block_id,
                    });
                }
                (head, tree)
            }
            None => write_genesis(&mut conn, &config, &signer)?,
        };
        tracing::info!(
            "chain head is block {} ({}), state root {}",
            head.block_num,
            head.block_id,
            head.state_root_hash
        );

        let registry = HandlerRegistry::new();
        for handler in &config.handlers {
            registry.register_in_process(handler.clone());
        }
        let intake = Arc::new(Intake::new(config.queue_capacity));
        let chain = Arc::new(Chain::new(db_path));
        let component_handle = start_component(&config.component, &registry, &chain)?;

        let publisher = Publisher {
            conn,
            tree,
            head,
            signer: signer.clone(),
            registry: registry.clone(),
            intake: intake.clone(),
            chain: chain.clone(),
            limits: PublishLimits {
                max_batches_per_block: config.max_batches_per_block.max(1),
                max_block_wait: config.max_block_wait,
            },
        };
        let publisher = std::thread::Builder::new()
            .name("block-publisher".into())
            .spawn(move || publisher.run())
            .map_err(|e| NodeError::DataDir {
                path: "publisher thread".into(),
                detail: e.to_string(),
            })?;

        let context = Arc::new(RestContext {
            intake: intake.clone(),
            chain: chain.clone(),
            registry: registry.clone(),
        });
        let (rest_addr, rest_stop, rest_thread) = rest::serve(config.rest_api, context)?;
        Ok(NodeHandle {
            rest_addr,
            component: component_handle.endpoint(),
            public_key: signer.public_key().to_string(),
            intake,
            chain,
            registry,
            publisher: Some(publisher),
            rest_stop: Some(rest_stop),
            rest_thread: Some(rest_thread),
            component_handle: Some(component_handle),
        })
    }
}

fn start_component(
    bind: &str,
    registry: &HandlerRegistry,
    chain: &Arc<Chain>,
) -> Result<ComponentHandle, NodeError> {
    let feed: Arc<dyn crate::chain_feed::ChainFeed> = chain.clone();
    ComponentEndpoint::start(bind, registry.clone(), feed).map_err(|e| NodeError::Component {
        endpoint: bind.to_string(),
        detail: e.to_string(),
    })
}

fn write_genesis(
    conn: &mut rusqlite::Connection,
    config: &NodeConfig,
    signer: &Signer,
) -> Result<(BlockSummary, StateTree), NodeError> {
    let settings = &config.genesis;
    let mut changes = settings.leaves()?;
    changes.extend(
        config
            .genesis_leaves
            .iter()
            .map(|(address, value)| (address.clone(), Some(value.clone()))),
    );
    let mut tree = StateTree::from_leaves(Vec::new())?;
    let state_root = tree.apply(&changes)?;
    let mut header = BlockHeader::new();
    header.set_block_num(0);
    header.set_previous_block_id(NULL_BLOCK_ID.to_string());
    header.set_signer_public_key(signer.public_key().to_string());
    header.set_consensus(CONSENSUS.to_vec());
    header.set_state_root_hash(state_root.clone());
    let header_bytes = header
        .write_to_bytes()
        .map_err(|e| genesis::GenesisError::Key(format!("cannot encode genesis header: {e}")))?;
    let block_id = signer.sign(&header_bytes);
    store::write_block(
        conn,
        &BlockRecord {
            block_num: 0,
            block_id: &block_id,
            header: &header_bytes,
            previous_block_id: NULL_BLOCK_ID,
            state_root_hash: &state_root,
            batches: &[],
            receipts: &[],
            state_changes: &changes,
        },
    )?;
    tracing::info!(
        "created genesis block {block_id} with {} settings",
        settings.0.len()
    );
    Ok((
        BlockSummary {
            block_num: 0,
            block_id,
            previous_block_id: NULL_BLOCK_ID.to_string(),
            state_root_hash: state_root,
        },
        tree,
    ))
}

impl NodeHandle {
    /// Base URL of the REST API, e.g. `http://127.0.0.1:8008`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// The ZeroMQ component endpoint TPs and event subscribers connect to.
    pub fn component_endpoint(&self) -> &str {
        &self.component
    }

    /// The node's public key (signer of its blocks).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The handler registry (to add in-process handlers after start).
    pub fn registry(&self) -> &HandlerRegistry {
        &self.registry
    }

    /// The committed chain, for in-process followers.
    pub fn chain_feed(&self) -> Arc<dyn crate::chain_feed::ChainFeed> {
        self.chain.clone()
    }

    /// Stops accepting work, lets the current block finish, stops serving.
    /// Batches still queued are dropped (they were never reported committed).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.intake.close();
        // The component endpoint goes first: a request in flight to an
        // external TP then fails at once instead of holding the publisher.
        if let Some(component) = self.component_handle.take() {
            component.shutdown();
        }
        if let Some(stop) = self.rest_stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.rest_thread.take() {
            let _ = thread.join();
        }
        if let Some(thread) = self.publisher.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
