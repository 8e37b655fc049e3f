//! Which events a committed block yields for a set of subscriptions, with
//! Sawtooth 1.2's semantics (`sawtooth_validator/server/events/subscription.py`
//! and `journal/event_extractors.py`). Pure functions over a
//! [`CommittedBlock`]: no sockets, no threads, no store.
//!
//! Per block, in this order: `sawtooth/block-commit` (if subscribed), the
//! families' events from the receipts in transaction order (those in any
//! subscription), then one `sawtooth/state-delta` whose `address` attributes
//! and `StateChangeList` data hold the block's changes squashed to the last
//! write per address (newest first, as Sawtooth does), sent only when the
//! event passes a subscription's filters.
use protobuf::{Message as _, RepeatedField};
use regex::Regex;
use sawtooth_sdk::messages::events::{
    Event, EventFilter, EventFilter_FilterType, EventSubscription, Event_Attribute,
};
use sawtooth_sdk::messages::transaction_receipt::{StateChange, StateChangeList};

use crate::chain_feed::CommittedBlock;

pub const BLOCK_COMMIT: &str = "sawtooth/block-commit";
pub const STATE_DELTA: &str = "sawtooth/state-delta";
/// The block id a subscriber passes to get every block from genesis.
pub const NULL_BLOCK_ID: &str = "0000000000000000";

/// One attribute filter of a subscription.
#[derive(Clone, Debug)]
pub enum Filter {
    /// Some attribute `key` equals the value.
    SimpleAny { key: String, value: String },
    /// Every attribute `key` equals the value (vacuously true without one).
    SimpleAll { key: String, value: String },
    /// The pattern is found in some attribute `key`.
    RegexAny { key: String, pattern: Regex },
    /// The pattern is found in every attribute `key` (vacuously true).
    RegexAll { key: String, pattern: Regex },
}

impl Filter {
    fn matches(&self, event: &Event) -> bool {
        let values = |key: &str| {
            event
                .get_attributes()
                .iter()
                .filter(move |a| a.get_key() == key)
                .map(|a| a.get_value().to_string())
                .collect::<Vec<_>>()
        };
        match self {
            Filter::SimpleAny { key, value } => values(key).iter().any(|v| v == value),
            Filter::SimpleAll { key, value } => values(key).iter().all(|v| v == value),
            Filter::RegexAny { key, pattern } => values(key).iter().any(|v| pattern.is_match(v)),
            Filter::RegexAll { key, pattern } => values(key).iter().all(|v| pattern.is_match(v)),
        }
    }
}

/// An event type plus filters that must all pass.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub event_type: String,
    pub filters: Vec<Filter>,
}

impl Subscription {
    /// True when the event has this type and passes every filter.
    pub fn contains(&self, event: &Event) -> bool {
        event.get_event_type() == self.event_type && self.filters.iter().all(|f| f.matches(event))
    }
}

/// Turns the wire subscriptions into checked ones; the error text is what
/// the subscriber gets back with `INVALID_FILTER`.
pub fn parse_subscriptions(wire: &[EventSubscription]) -> Result<Vec<Subscription>, String> {
    wire.iter()
        .map(|sub| {
            let filters = sub
                .get_filters()
                .iter()
                .map(parse_filter)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Subscription {
                event_type: sub.get_event_type().to_string(),
                filters,
            })
        })
        .collect()
}

fn parse_filter(filter: &EventFilter) -> Result<Filter, String> {
    let key = filter.get_key().to_string();
    let text = filter.get_match_string();
    let regex = || Regex::new(text).map_err(|e| format!("Invalid regular expression: {text}: {e}"));
    match filter.get_filter_type() {
        EventFilter_FilterType::SIMPLE_ANY => Ok(Filter::SimpleAny { key, value: text.to_string() }),
        EventFilter_FilterType::SIMPLE_ALL => Ok(Filter::SimpleAll { key, value: text.to_string() }),
        EventFilter_FilterType::REGEX_ANY => Ok(Filter::RegexAny { key, pattern: regex()? }),
        EventFilter_FilterType::REGEX_ALL => Ok(Filter::RegexAll { key, pattern: regex()? }),
        EventFilter_FilterType::FILTER_TYPE_UNSET => Err(format!(
            "Unknown filter type: FILTER_TYPE_UNSET on key {key:?}; use SIMPLE_ANY, SIMPLE_ALL, REGEX_ANY or REGEX_ALL"
        )),
    }
}

fn attribute(key: &str, value: &str) -> Event_Attribute {
    let mut a = Event_Attribute::new();
    a.set_key(key.to_string());
    a.set_value(value.to_string());
    a
}

/// The `sawtooth/block-commit` event of a block.
pub fn block_commit_event(block: &CommittedBlock) -> Event {
    let mut event = Event::new();
    event.set_event_type(BLOCK_COMMIT.to_string());
    event.set_attributes(RepeatedField::from_vec(vec![
        attribute("block_id", &block.block_id),
        attribute("block_num", &block.block_num.to_string()),
        attribute("state_root_hash", &block.state_root_hash),
        attribute("previous_block_id", &block.previous_block_id),
    ]));
    event
}

/// The `sawtooth/state-delta` event of a block: last write per address wins.
pub fn state_delta_event(block: &CommittedBlock) -> Event {
    let mut seen = std::collections::BTreeSet::new();
    let mut squashed: Vec<StateChange> = Vec::new();
    for receipt in block.receipts.iter().rev() {
        for change in receipt.get_state_changes().iter().rev() {
            if seen.insert(change.get_address().to_string()) {
                squashed.push(change.clone());
            }
        }
    }
    let attributes = squashed
        .iter()
        .map(|c| attribute("address", c.get_address()))
        .collect();
    let mut list = StateChangeList::new();
    list.set_state_changes(RepeatedField::from_vec(squashed));
    let mut event = Event::new();
    event.set_event_type(STATE_DELTA.to_string());
    event.set_attributes(RepeatedField::from_vec(attributes));
    // Serializing a message built from already-decoded fields cannot fail;
    // an empty payload would still be a valid (empty) StateChangeList.
    event.set_data(list.write_to_bytes().unwrap_or_default());
    event
}

/// Every event of `block` that is in at least one of `subscriptions`.
pub fn block_events(block: &CommittedBlock, subscriptions: &[Subscription]) -> Vec<Event> {
    let in_any = |event: &Event| subscriptions.iter().any(|s| s.contains(event));
    let wants = |event_type: &str| subscriptions.iter().any(|s| s.event_type == event_type);
    let mut events = Vec::new();
    if wants(BLOCK_COMMIT) {
        let commit = block_commit_event(block);
        if in_any(&commit) {
            events.push(commit);
        }
    }
    for receipt in &block.receipts {
        events.extend(receipt.get_events().iter().filter(|e| in_any(e)).cloned());
    }
    if wants(STATE_DELTA) {
        let delta = state_delta_event(block);
        if in_any(&delta) {
            events.push(delta);
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use sawtooth_sdk::messages::block::Block;
    use sawtooth_sdk::messages::transaction_receipt::{StateChange_Type, TransactionReceipt};

    fn change(address: &str, value: &[u8]) -> StateChange {
        let mut c = StateChange::new();
        c.set_address(address.to_string());
        c.set_value(value.to_vec());
        c.set_field_type(StateChange_Type::SET);
        c
    }

    fn block_with(changes: Vec<Vec<StateChange>>) -> CommittedBlock {
        let receipts = changes
            .into_iter()
            .map(|cs| {
                let mut r = TransactionReceipt::new();
                r.set_state_changes(RepeatedField::from_vec(cs));
                let mut e = Event::new();
                e.set_event_type("coldchain/custody".into());
                e.set_attributes(RepeatedField::from_vec(vec![attribute("lot", "L-1")]));
                r.set_events(RepeatedField::from_vec(vec![e]));
                r
            })
            .collect();
        CommittedBlock {
            block: Block::new(),
            block_id: "b1".into(),
            block_num: 1,
            previous_block_id: "b0".into(),
            state_root_hash: "root".into(),
            receipts,
        }
    }

    fn wire(
        event_type: &str,
        filters: Vec<(EventFilter_FilterType, &str, &str)>,
    ) -> EventSubscription {
        let mut s = EventSubscription::new();
        s.set_event_type(event_type.into());
        s.set_filters(RepeatedField::from_vec(
            filters
                .into_iter()
                .map(|(t, k, m)| {
                    let mut f = EventFilter::new();
                    f.set_filter_type(t);
                    f.set_key(k.into());
                    f.set_match_string(m.into());
                    f
                })
                .collect(),
        ));
        s
    }

    #[test]
    fn state_delta_squashes_to_the_last_write_newest_first() {
        let block = block_with(vec![
            vec![change("aa01", b"1"), change("aa02", b"2")],
            vec![change("aa01", b"3")],
        ]);
        let delta = state_delta_event(&block);
        let list =
            StateChangeList::parse_from_bytes(delta.get_data()).expect("own encoding decodes");
        let got: Vec<_> = list
            .get_state_changes()
            .iter()
            .map(|c| (c.get_address(), c.get_value()))
            .collect();
        assert_eq!(got, vec![("aa01", &b"3"[..]), ("aa02", &b"2"[..])]);
        assert_eq!(delta.get_attributes().len(), 2);
    }

    #[test]
    fn state_delta_is_sent_only_when_an_address_matches_the_regex() {
        let block = block_with(vec![vec![change("aa01", b"1")]]);
        let hit = parse_subscriptions(&[wire(
            STATE_DELTA,
            vec![(EventFilter_FilterType::REGEX_ANY, "address", "^aa")],
        )]);
        let miss = parse_subscriptions(&[wire(
            STATE_DELTA,
            vec![(EventFilter_FilterType::REGEX_ANY, "address", "^bb")],
        )]);
        assert_eq!(block_events(&block, &hit.expect("valid")).len(), 1);
        assert!(block_events(&block, &miss.expect("valid")).is_empty());
    }

    #[test]
    fn block_commit_comes_first_with_sawtooth_attributes() {
        let block = block_with(vec![vec![]]);
        let subs = parse_subscriptions(&[
            wire("coldchain/custody", vec![]),
            wire(BLOCK_COMMIT, vec![]),
        ])
        .expect("valid");
        let events = block_events(&block, &subs);
        assert_eq!(events[0].get_event_type(), BLOCK_COMMIT);
        let keys: Vec<_> = events[0]
            .get_attributes()
            .iter()
            .map(|a| a.get_key())
            .collect();
        assert_eq!(
            keys,
            vec![
                "block_id",
                "block_num",
                "state_root_hash",
                "previous_block_id"
            ]
        );
        assert_eq!(events[1].get_event_type(), "coldchain/custody");
    }

    #[test]
    fn simple_all_rejects_an_event_with_one_differing_value() {
        let subs = |m: &str| {
            parse_subscriptions(&[wire(
                STATE_DELTA,
                vec![(EventFilter_FilterType::SIMPLE_ALL, "address", m)],
            )])
            .expect("valid")
        };
        let two = block_with(vec![vec![change("aa01", b"1"), change("aa02", b"1")]]);
        let one = block_with(vec![vec![change("aa01", b"1")]]);
        assert!(block_events(&two, &subs("aa01")).is_empty());
        assert_eq!(block_events(&one, &subs("aa01")).len(), 1);
    }

    #[test]
    fn a_bad_regex_or_unset_filter_type_is_refused_with_the_reason() {
        let bad = parse_subscriptions(&[wire(
            STATE_DELTA,
            vec![(EventFilter_FilterType::REGEX_ANY, "address", "(")],
        )]);
        assert!(bad
            .err()
            .unwrap_or_default()
            .contains("Invalid regular expression"));
        let unset = parse_subscriptions(&[wire(
            STATE_DELTA,
            vec![(EventFilter_FilterType::FILTER_TYPE_UNSET, "address", "x")],
        )]);
        assert!(unset
            .err()
            .unwrap_or_default()
            .contains("Unknown filter type"));
    }
}
