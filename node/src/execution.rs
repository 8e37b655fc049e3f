//! Serial execution of batches against the pending state of a block.
//!
//! Each transaction runs its family's handler with a [`ScopedContext`] that
//! reads through three layers (this transaction's writes, the block's writes
//! so far, the committed state) and enforces the header's inputs and outputs
//! by prefix, as Sawtooth does. A batch is all or nothing: its writes reach
//! the block only if every transaction succeeds. Handlers that panic are
//! caught and treated as internal errors; the node keeps running.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

use protobuf::RepeatedField;
use sawtooth_sdk::messages::events::{Event, Event_Attribute};
use sawtooth_sdk::messages::processor::TpProcessRequest;
use sawtooth_sdk::messages::transaction_receipt::{
    StateChange, StateChange_Type, TransactionReceipt,
};
use sawtooth_sdk::processor::handler::{ApplyError, ContextError, TransactionContext};

use crate::handlers::HandlerRegistry;
use crate::merkle::StateTree;
use crate::validation::ValidBatch;

/// Writes pending in a block or transaction: `None` is a delete.
pub type Overlay = BTreeMap<String, Option<Vec<u8>>>;

/// What became of a batch.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Every transaction succeeded: the writes (to merge into the block) and
    /// one receipt per transaction.
    Valid {
        writes: Overlay,
        receipts: Vec<TransactionReceipt>,
    },
    /// A transaction was invalid: (transaction id, message, extended data).
    Invalid {
        transaction_id: String,
        message: String,
        extended_data: Vec<u8>,
    },
    /// A handler failed internally (or is gone); the batch may be retried.
    Internal {
        transaction_id: String,
        message: String,
    },
}

/// A `TransactionContext` bound to one transaction's declared inputs/outputs.
pub struct ScopedContext<'a> {
    committed: &'a StateTree,
    block: &'a Overlay,
    batch: &'a Overlay,
    inputs: &'a [String],
    outputs: &'a [String],
    writes: RefCell<Overlay>,
    events: RefCell<Vec<Event>>,
    data: RefCell<Vec<Vec<u8>>>,
    /// The first access outside the declared inputs/outputs, if any.
    violation: RefCell<Option<String>>,
}

fn allowed(address: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| address.starts_with(p.as_str()))
}

fn well_formed(address: &str) -> bool {
    coldchain_processors::addressing::is_address(address)
}

impl<'a> ScopedContext<'a> {
    fn deny(&self, what: &str, address: &str) -> ContextError {
        let message = if well_formed(address) {
            format!(
                "transaction {what} {address}, which is not in its declared {}",
                if what == "read" { "inputs" } else { "outputs" }
            )
        } else {
            format!("transaction {what} {address:?}, which is not a 70-character lowercase hex state address")
        };
        self.violation.borrow_mut().get_or_insert(message.clone());
        ContextError::AuthorizationError(message)
    }

    fn read(&self, address: &str) -> Option<Vec<u8>> {
        for layer in [&*self.writes.borrow(), self.batch, self.block] {
            if let Some(value) = layer.get(address) {
                return value.clone();
            }
        }
        self.committed.get(address)
    }
}

impl TransactionContext for ScopedContext<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        let mut found = Vec::new();
        for address in addresses {
            if !well_formed(address) || !allowed(address, self.inputs) {
                return Err(self.deny("read", address));
            }
            if let Some(value) = self.read(address) {
                found.push((address.clone(), value));
            }
        }
        Ok(found)
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        if let Some((address, _)) = entries
            .iter()
            .find(|(a, _)| !well_formed(a) || !allowed(a, self.outputs))
        {
            return Err(self.deny("wrote", address));
        }
        let mut writes = self.writes.borrow_mut();
        for (address, value) in entries {
            writes.insert(address, Some(value));
        }
        Ok(())
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        if let Some(address) = addresses
            .iter()
            .find(|a| !well_formed(a) || !allowed(a, self.outputs))
        {
            return Err(self.deny("deleted", address));
        }
        let mut deleted = Vec::new();
        for address in addresses {
            if self.read(address).is_some() {
                deleted.push(address.clone());
            }
            self.writes.borrow_mut().insert(address.clone(), None);
        }
        Ok(deleted)
    }

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.data.borrow_mut().push(data.to_vec());
        Ok(())
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        let mut event = Event::new();
        event.set_event_type(event_type);
        event.set_attributes(
            attributes
                .into_iter()
                .map(|(key, value)| {
                    let mut attribute = Event_Attribute::new();
                    attribute.set_key(key);
                    attribute.set_value(value);
                    attribute
                })
                .collect(),
        );
        event.set_data(data.to_vec());
        self.events.borrow_mut().push(event);
        Ok(())
    }
}

thread_local! {
    /// `TpProcessResponse.extended_data` of the last INVALID answer of an
    /// external TP on this thread. The SDK's `ApplyError` carries only a
    /// message, and `execute_batch` calls a handler synchronously on its own
    /// thread, so the remote handler leaves the bytes here for it to take.
    static INVALID_EXTENDED_DATA: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Called by a handler just before it returns `InvalidTransaction`, with the
/// extended data Sawtooth reports beside the message in `/batch_statuses`.
pub fn set_invalid_extended_data(extended_data: Vec<u8>) {
    INVALID_EXTENDED_DATA.with(|slot| *slot.borrow_mut() = extended_data);
}

fn take_invalid_extended_data() -> Vec<u8> {
    INVALID_EXTENDED_DATA.with(|slot| std::mem::take(&mut *slot.borrow_mut()))
}

/// Runs every transaction of `batch` in order over `committed` + `block`.
pub fn execute_batch(
    batch: &ValidBatch,
    committed: &StateTree,
    block: &Overlay,
    registry: &HandlerRegistry,
    context_id: &str,
) -> BatchOutcome {
    let mut batch_writes = Overlay::new();
    let mut receipts = Vec::with_capacity(batch.transactions.len());
    for (txn, valid) in batch
        .batch
        .get_transactions()
        .iter()
        .zip(&batch.transactions)
    {
        let header = &valid.header;
        let Some(handler) = registry.route(header.get_family_name(), header.get_family_version())
        else {
            return BatchOutcome::Internal {
                transaction_id: valid.id.clone(),
                message: format!(
                    "no transaction processor is registered for family {} version {}",
                    header.get_family_name(),
                    header.get_family_version()
                ),
            };
        };
        let mut request = TpProcessRequest::new();
        request.set_header(header.clone());
        crate::component::registration::attach_header_bytes(&mut request, txn.get_header());
        request.set_payload(txn.get_payload().to_vec());
        request.set_signature(valid.id.clone());
        request.set_context_id(context_id.to_string());
        let mut context = ScopedContext {
            committed,
            block,
            batch: &batch_writes,
            inputs: header.get_inputs(),
            outputs: header.get_outputs(),
            writes: RefCell::new(Overlay::new()),
            events: RefCell::new(Vec::new()),
            data: RefCell::new(Vec::new()),
            violation: RefCell::new(None),
        };
        take_invalid_extended_data();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.apply(&request, &mut context)))
                .unwrap_or_else(|_| {
                    Err(ApplyError::InternalError(
                        "the transaction handler panicked".into(),
                    ))
                });
        let violation = context.violation.borrow_mut().take();
        match result {
            // As in Sawtooth, a TP that was refused an access reports what it
            // makes of it (the SDKs answer INVALID_TRANSACTION with their own
            // message), and that answer is what clients see.
            Err(ApplyError::InvalidTransaction(message)) => {
                return BatchOutcome::Invalid {
                    transaction_id: valid.id.clone(),
                    message,
                    extended_data: take_invalid_extended_data(),
                }
            }
            // A handler that swallowed the refusal still fails: a read or write
            // outside the declared inputs/outputs never yields a valid transaction.
            Ok(()) if violation.is_some() => {
                return BatchOutcome::Invalid {
                    transaction_id: valid.id.clone(),
                    message: violation.unwrap_or_default(),
                    extended_data: Vec::new(),
                }
            }
            Ok(()) => {}
            Err(ApplyError::InternalError(message)) => {
                return BatchOutcome::Internal {
                    transaction_id: valid.id.clone(),
                    message,
                }
            }
        }
        let writes = context.writes.into_inner();
        let mut receipt = TransactionReceipt::new();
        receipt.set_transaction_id(valid.id.clone());
        receipt.set_state_changes(writes.iter().map(|(a, v)| state_change(a, v)).collect());
        receipt.set_events(RepeatedField::from_vec(context.events.into_inner()));
        receipt.set_data(RepeatedField::from_vec(context.data.into_inner()));
        receipts.push(receipt);
        batch_writes.extend(writes);
    }
    BatchOutcome::Valid {
        writes: batch_writes,
        receipts,
    }
}

fn state_change(address: &str, value: &Option<Vec<u8>>) -> StateChange {
    let mut change = StateChange::new();
    change.set_address(address.to_string());
    match value {
        Some(value) => {
            change.set_field_type(StateChange_Type::SET);
            change.set_value(value.clone());
        }
        None => change.set_field_type(StateChange_Type::DELETE),
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(tail: char) -> String {
        format!("abcdef{}", tail.to_string().repeat(64))
    }

    #[test]
    fn reads_and_writes_are_allowed_by_declared_prefix_only() {
        let tree = StateTree::from_leaves(vec![(address('1'), b"x".to_vec())]).unwrap();
        let (block, batch) = (Overlay::new(), Overlay::new());
        let inputs = vec!["abcdef1".to_string()];
        let outputs = vec![address('2')];
        let context = ScopedContext {
            committed: &tree,
            block: &block,
            batch: &batch,
            inputs: &inputs,
            outputs: &outputs,
            writes: RefCell::new(Overlay::new()),
            events: RefCell::new(Vec::new()),
            data: RefCell::new(Vec::new()),
            violation: RefCell::new(None),
        };
        assert_eq!(
            context.get_state_entry(&address('1')).unwrap(),
            Some(b"x".to_vec())
        );
        assert!(context.violation.borrow().is_none());
        assert!(context.set_state_entry(address('2'), b"y".to_vec()).is_ok());
        assert!(context
            .set_state_entry(address('3'), b"z".to_vec())
            .is_err());
        assert!(context
            .violation
            .borrow()
            .as_deref()
            .unwrap()
            .contains("declared outputs"));
        assert!(context.get_state_entry("not-an-address").is_err());
    }

    #[test]
    fn a_transaction_reads_its_own_writes_and_deletes() {
        let tree = StateTree::from_leaves(vec![(address('1'), b"x".to_vec())]).unwrap();
        let (block, batch) = (Overlay::new(), Overlay::new());
        let all = vec!["abcdef".to_string()];
        let context = ScopedContext {
            committed: &tree,
            block: &block,
            batch: &batch,
            inputs: &all,
            outputs: &all,
            writes: RefCell::new(Overlay::new()),
            events: RefCell::new(Vec::new()),
            data: RefCell::new(Vec::new()),
            violation: RefCell::new(None),
        };
        assert_eq!(
            context.delete_state_entry(&address('1')).unwrap(),
            Some(address('1'))
        );
        assert_eq!(context.get_state_entry(&address('1')).unwrap(), None);
        context
            .set_state_entry(address('2'), b"new".to_vec())
            .unwrap();
        assert_eq!(
            context.get_state_entry(&address('2')).unwrap(),
            Some(b"new".to_vec())
        );
    }
}
