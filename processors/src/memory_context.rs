//! An in-memory `TransactionContext`: a sorted map of address → bytes plus the
//! events and receipt data a handler emits. Used by unit tests, benchmarks and
//! anything that applies handlers without a validator.
use std::cell::RefCell;
use std::collections::BTreeMap;

use sawtooth_sdk::processor::handler::{ContextError, TransactionContext};

/// An event as a handler emitted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmittedEvent {
    pub event_type: String,
    pub attributes: Vec<(String, String)>,
    pub data: Vec<u8>,
}

/// State in a `BTreeMap` (deterministic order) with interior mutability, as the
/// SDK trait takes `&self` for reads.
#[derive(Default, Debug)]
pub struct MemoryContext {
    state: RefCell<BTreeMap<String, Vec<u8>>>,
    events: RefCell<Vec<EmittedEvent>>,
    receipts: RefCell<Vec<Vec<u8>>>,
}

impl MemoryContext {
    pub fn new() -> MemoryContext {
        MemoryContext::default()
    }

    /// Puts raw bytes at an address (test setup, genesis settings).
    pub fn put(&self, address: &str, bytes: Vec<u8>) {
        self.state.borrow_mut().insert(address.to_string(), bytes);
    }

    /// Raw bytes at an address.
    pub fn get(&self, address: &str) -> Option<Vec<u8>> {
        self.state.borrow().get(address).cloned()
    }

    /// A copy of all state, sorted by address.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.state.borrow().clone()
    }

    /// Replaces all state (e.g. to roll back after an invalid transaction).
    pub fn restore(&self, snapshot: BTreeMap<String, Vec<u8>>) {
        *self.state.borrow_mut() = snapshot;
    }

    /// Takes the events emitted so far.
    pub fn take_events(&self) -> Vec<EmittedEvent> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// Takes the receipt data added so far.
    pub fn take_receipts(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.receipts.borrow_mut())
    }
}

impl TransactionContext for MemoryContext {
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
        let mut state = self.state.borrow_mut();
        for (address, value) in entries {
            state.insert(address, value);
        }
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

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.receipts.borrow_mut().push(data.to_vec());
        Ok(())
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        self.events.borrow_mut().push(EmittedEvent {
            event_type,
            attributes,
            data: data.to_vec(),
        });
        Ok(())
    }
}
