//! Which handler executes which transaction family. In-process handlers (the
//! coldchain families) are registered at start; an external TP that registers
//! over ZeroMQ for the same family/version takes precedence while connected.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sawtooth_sdk::processor::handler::TransactionHandler;

/// A handler shareable across threads.
pub type SharedHandler = Arc<dyn TransactionHandler + Send + Sync>;

#[derive(Default)]
struct Routes {
    in_process: BTreeMap<(String, String), SharedHandler>,
    /// External processors, newest registration last; keyed by connection id.
    external: BTreeMap<(String, String), Vec<(String, SharedHandler)>>,
}

/// Routes (family, version) to a handler.
#[derive(Default, Clone)]
pub struct HandlerRegistry {
    routes: Arc<RwLock<Routes>>,
}

impl HandlerRegistry {
    pub fn new() -> HandlerRegistry {
        HandlerRegistry::default()
    }

    /// Registers an in-process handler for every version it declares.
    pub fn register_in_process(&self, handler: SharedHandler) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        for version in handler.family_versions() {
            routes
                .in_process
                .insert((handler.family_name(), version), handler.clone());
        }
    }

    /// Registers an external processor (identified by its connection id).
    pub fn register_external(
        &self,
        family: &str,
        version: &str,
        connection_id: &str,
        handler: SharedHandler,
    ) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let entry = routes
            .external
            .entry((family.to_string(), version.to_string()))
            .or_default();
        entry.retain(|(id, _)| id != connection_id);
        entry.push((connection_id.to_string(), handler));
    }

    /// Removes every registration of an external processor connection.
    pub fn unregister_external(&self, connection_id: &str) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        for entries in routes.external.values_mut() {
            entries.retain(|(id, _)| id != connection_id);
        }
        routes.external.retain(|_, entries| !entries.is_empty());
    }

    /// The handler for a family/version: the newest external one, else in-process.
    pub fn route(&self, family: &str, version: &str) -> Option<SharedHandler> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let key = (family.to_string(), version.to_string());
        routes
            .external
            .get(&key)
            .and_then(|entries| entries.last().map(|(_, h)| h.clone()))
            .or_else(|| routes.in_process.get(&key).cloned())
    }

    /// True when an external processor serves this family/version.
    pub fn has_external(&self, family: &str, version: &str) -> bool {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes
            .external
            .contains_key(&(family.to_string(), version.to_string()))
    }
}
