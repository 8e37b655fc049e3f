//! Component endpoint tests against real ZeroMQ sockets: an in-memory
//! [`ChainFeed`], raw DEALER clients speaking the Sawtooth protocol, and the
//! `component_intkey_tp` example (built on the official Rust SDK's
//! `TransactionProcessor`) run as a real process.
mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::client_event::*;
use sawtooth_sdk::messages::events::{
    EventFilter, EventFilter_FilterType, EventList, EventSubscription,
};
use sawtooth_sdk::messages::processor::*;
use sawtooth_sdk::messages::transaction_receipt::StateChangeList;
use sawtooth_sdk::messages::validator::Message_MessageType as Type;
use sawtooth_sdk::processor::handler::{
    ApplyError, ContextError, TransactionContext, TransactionHandler,
};

use super::events::{BLOCK_COMMIT, STATE_DELTA};
use super::{ComponentEndpoint, ComponentSettings};
use crate::handlers::HandlerRegistry;
use harness::*;

fn fast_settings() -> ComponentSettings {
    ComponentSettings {
        heartbeat_interval: Duration::from_millis(200),
        ..ComponentSettings::default()
    }
}

#[test]
fn sdk_tp_registers_and_processes_with_state_events_and_receipts() {
    let registry = HandlerRegistry::new();
    registry.register_in_process(Arc::new(InProcessIntkey));
    let feed = MemoryFeed::new();
    let endpoint = ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), feed)
        .expect("endpoint starts");
    let _tp = TpProcess::spawn(&endpoint.endpoint(), "intkey");
    wait_until("the TP registers", || {
        registry.has_external("intkey", "1.0")
    });
    let handler = registry.route("intkey", "1.0").expect("routed");

    let mut context = FencedContext::allowing(&[INTKEY_NS]);
    handler
        .apply(&intkey_request("set apples 5"), &mut context)
        .expect("set is valid");
    handler
        .apply(&intkey_request("inc apples 2"), &mut context)
        .expect("inc is valid");
    assert_eq!(
        context.inner.get(&intkey_address("apples")),
        Some(b"7".to_vec())
    );
    let events = context.inner.take_events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0, "intkey/changed");
    assert!(events[1]
        .1
        .contains(&("value".to_string(), "7".to_string())));
    assert_eq!(
        context.inner.take_receipts(),
        vec![b"apples=5".to_vec(), b"apples=7".to_vec()]
    );

    handler
        .apply(&intkey_request("del apples"), &mut context)
        .expect("del is valid");
    assert_eq!(context.inner.get(&intkey_address("apples")), None);

    match handler.apply(
        &intkey_request("refuse lot L-1 is compromised"),
        &mut context,
    ) {
        Err(ApplyError::InvalidTransaction(message)) => {
            assert_eq!(message, "lot L-1 is compromised")
        }
        other => panic!("expected InvalidTransaction, got {other:?}"),
    }
    endpoint.shutdown();
    assert!(
        !registry.has_external("intkey", "1.0"),
        "shutdown unregisters external TPs"
    );
}

#[test]
fn writes_outside_the_declared_outputs_fail_the_remote_transaction() {
    let registry = HandlerRegistry::new();
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), MemoryFeed::new())
            .expect("endpoint starts");
    let _tp = TpProcess::spawn(&endpoint.endpoint(), "intkey");
    wait_until("the TP registers", || {
        registry.has_external("intkey", "1.0")
    });
    let handler = registry.route("intkey", "1.0").expect("routed");
    let mut context = FencedContext::allowing(&["ffffff"]);
    match handler.apply(&intkey_request("set apples 5"), &mut context) {
        Err(ApplyError::InvalidTransaction(message)) => {
            assert!(message.contains("unauthorized"), "{message}")
        }
        other => panic!("expected InvalidTransaction, got {other:?}"),
    }
    assert!(context.inner.is_empty());
}

#[test]
fn killing_the_tp_falls_back_to_the_in_process_handler() {
    let registry = HandlerRegistry::new();
    registry.register_in_process(Arc::new(InProcessIntkey));
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), MemoryFeed::new())
            .expect("endpoint starts");
    let tp = TpProcess::spawn(&endpoint.endpoint(), "intkey");
    wait_until("the TP registers", || {
        registry.has_external("intkey", "1.0")
    });
    drop(tp); // kill -9
    wait_until("the dead TP is unregistered", || {
        !registry.has_external("intkey", "1.0")
    });
    let handler = registry
        .route("intkey", "1.0")
        .expect("in-process handler remains");
    let mut context = FencedContext::allowing(&[INTKEY_NS]);
    handler
        .apply(&intkey_request("set apples 5"), &mut context)
        .expect("in-process apply");
    assert_eq!(
        context.inner.get(&intkey_address("apples")),
        Some(IN_PROCESS_MARK.to_vec())
    );
}

#[test]
fn a_tp_killed_mid_request_fails_the_apply_with_an_internal_error() {
    let registry = HandlerRegistry::new();
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), MemoryFeed::new())
            .expect("endpoint starts");
    let tp = Arc::new(Mutex::new(Some(TpProcess::spawn(
        &endpoint.endpoint(),
        "intkey",
    ))));
    wait_until("the TP registers", || {
        registry.has_external("intkey", "1.0")
    });
    let handler = registry.route("intkey", "1.0").expect("routed");
    // The TP dies while waiting for the answer to its state read.
    let mut context = KillOnRead { tp: tp.clone() };
    match handler.apply(&intkey_request("inc apples 1"), &mut context) {
        Err(ApplyError::InternalError(message)) => {
            assert!(message.contains("disconnected"), "{message}")
        }
        other => panic!("expected InternalError, got {other:?}"),
    }
    wait_until("the dead TP is unregistered", || {
        !registry.has_external("intkey", "1.0")
    });
}

#[test]
fn tp_register_and_unregister_requests_add_and_remove_the_route() {
    let registry = HandlerRegistry::new();
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), MemoryFeed::new())
            .expect("endpoint starts");
    let client = Client::connect(&endpoint.endpoint());
    let mut register = TpRegisterRequest::new();
    register.set_family("coldchain-custody".into());
    register.set_version("1.0".into());
    register.set_namespaces(RepeatedField::from_vec(vec!["c0ffee".into()]));
    let reply = client.request(
        Type::TP_REGISTER_REQUEST,
        &register,
        Type::TP_REGISTER_RESPONSE,
    );
    let reply = TpRegisterResponse::parse_from_bytes(&reply).expect("decodes");
    assert_eq!(reply.get_status(), TpRegisterResponse_Status::OK);
    assert!(registry.has_external("coldchain-custody", "1.0"));
    let reply = client.request(
        Type::TP_UNREGISTER_REQUEST,
        &TpUnregisterRequest::new(),
        Type::TP_UNREGISTER_RESPONSE,
    );
    let reply = TpUnregisterResponse::parse_from_bytes(&reply).expect("decodes");
    assert_eq!(reply.get_status(), TpUnregisterResponse_Status::OK);
    assert!(!registry.has_external("coldchain-custody", "1.0"));
}

/// Sawtooth's rule: a TP asking for a registration protocol newer than the
/// validator's is refused and told the highest version known; an older or
/// equal one is echoed back (the SDKs check the echo).
#[test]
fn registration_protocol_versions_are_echoed_or_refused_with_the_highest_known() {
    let registry = HandlerRegistry::new();
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", registry.clone(), MemoryFeed::new())
            .expect("endpoint starts");
    let client = Client::connect(&endpoint.endpoint());
    let register = |version: u64| {
        let mut request = TpRegisterRequest::new();
        request.set_family("intkey".into());
        request.set_version("1.0".into());
        request.mut_unknown_fields().add_varint(6, version);
        let reply = client.request(
            Type::TP_REGISTER_REQUEST,
            &request,
            Type::TP_REGISTER_RESPONSE,
        );
        let reply = TpRegisterResponse::parse_from_bytes(&reply).expect("decodes");
        let echoed = reply
            .get_unknown_fields()
            .get(2)
            .and_then(|v| v.varint.last().copied())
            .unwrap_or(0);
        (reply.get_status(), echoed)
    };
    assert_eq!(register(2), (TpRegisterResponse_Status::ERROR, 1));
    assert!(!registry.has_external("intkey", "1.0"));
    assert_eq!(register(1), (TpRegisterResponse_Status::OK, 1));
    assert!(registry.has_external("intkey", "1.0"));
}

#[test]
fn the_endpoint_answers_pings_and_pings_idle_peers() {
    let endpoint = ComponentEndpoint::start_with(
        "tcp://127.0.0.1:*",
        HandlerRegistry::new(),
        MemoryFeed::new(),
        fast_settings(),
    )
    .expect("endpoint starts");
    let client = Client::connect(&endpoint.endpoint());
    let ping = sawtooth_sdk::messages::network::PingRequest::new();
    client.request(Type::PING_REQUEST, &ping, Type::PING_RESPONSE);
    let heartbeat = client
        .recv(Duration::from_secs(5))
        .expect("the idle client is pinged");
    assert_eq!(heartbeat.get_message_type(), Type::PING_REQUEST);
}

fn subscription(
    event_type: &str,
    filter: Option<(EventFilter_FilterType, &str, &str)>,
) -> EventSubscription {
    let mut s = EventSubscription::new();
    s.set_event_type(event_type.into());
    if let Some((filter_type, key, match_string)) = filter {
        let mut f = EventFilter::new();
        f.set_filter_type(filter_type);
        f.set_key(key.into());
        f.set_match_string(match_string.into());
        s.set_filters(RepeatedField::from_vec(vec![f]));
    }
    s
}

fn subscribe(
    client: &Client,
    subs: Vec<EventSubscription>,
    last_known: &[&str],
) -> ClientEventsSubscribeResponse {
    let mut request = ClientEventsSubscribeRequest::new();
    request.set_subscriptions(RepeatedField::from_vec(subs));
    request.set_last_known_block_ids(RepeatedField::from_vec(
        last_known.iter().map(|s| s.to_string()).collect(),
    ));
    let reply = client.request(
        Type::CLIENT_EVENTS_SUBSCRIBE_REQUEST,
        &request,
        Type::CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
    );
    ClientEventsSubscribeResponse::parse_from_bytes(&reply).expect("decodes")
}

/// Block numbers of the block-commit events received until `quiet` passes
/// with nothing new.
fn committed_block_nums(client: &Client, quiet: Duration) -> Vec<u64> {
    let mut nums = Vec::new();
    while let Some(message) = client.recv_type(Type::CLIENT_EVENTS, quiet) {
        let list = EventList::parse_from_bytes(message.get_content()).expect("EventList decodes");
        for event in list
            .get_events()
            .iter()
            .filter(|e| e.get_event_type() == BLOCK_COMMIT)
        {
            let num = event
                .get_attributes()
                .iter()
                .find(|a| a.get_key() == "block_num")
                .map(|a| a.get_value());
            nums.push(
                num.and_then(|n| n.parse().ok())
                    .expect("block_num attribute"),
            );
        }
    }
    nums
}

#[test]
fn a_subscriber_gets_block_commit_state_delta_and_family_events() {
    let feed = MemoryFeed::new();
    feed.commit(vec![]);
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", HandlerRegistry::new(), feed.clone())
            .expect("starts");
    let client = Client::connect(&endpoint.endpoint());
    let subs = vec![
        subscription(BLOCK_COMMIT, None),
        subscription(
            STATE_DELTA,
            Some((
                EventFilter_FilterType::REGEX_ANY,
                "address",
                &format!("^{INTKEY_NS}"),
            )),
        ),
        subscription(
            "intkey/changed",
            Some((EventFilter_FilterType::SIMPLE_ANY, "name", "apples")),
        ),
    ];
    assert_eq!(
        subscribe(&client, subs, &[]).get_status(),
        ClientEventsSubscribeResponse_Status::OK
    );
    let block = feed.commit(vec![
        receipt(&[(intkey_address("apples"), b"5".to_vec())], "apples"),
        receipt(&[], "pears"),
    ]);
    let message = client
        .recv_type(Type::CLIENT_EVENTS, Duration::from_secs(5))
        .expect("events arrive");
    let list = EventList::parse_from_bytes(message.get_content()).expect("decodes");
    let types: Vec<_> = list
        .get_events()
        .iter()
        .map(|e| e.get_event_type())
        .collect();
    assert_eq!(types, vec![BLOCK_COMMIT, "intkey/changed", STATE_DELTA]);
    let commit = &list.get_events()[0];
    assert!(commit
        .get_attributes()
        .iter()
        .any(|a| a.get_key() == "block_id" && a.get_value() == block.block_id));
    let delta =
        StateChangeList::parse_from_bytes(list.get_events()[2].get_data()).expect("decodes");
    assert_eq!(delta.get_state_changes()[0].get_value(), b"5");

    // A block touching no subscribed address yields no state-delta.
    feed.commit(vec![receipt(
        &[("ffffff00".to_string(), b"1".to_vec())],
        "pears",
    )]);
    let message = client
        .recv_type(Type::CLIENT_EVENTS, Duration::from_secs(5))
        .expect("events arrive");
    let list = EventList::parse_from_bytes(message.get_content()).expect("decodes");
    let types: Vec<_> = list
        .get_events()
        .iter()
        .map(|e| e.get_event_type())
        .collect();
    assert_eq!(types, vec![BLOCK_COMMIT]);
}

#[test]
fn catch_up_after_a_disconnect_delivers_missed_blocks_once_and_in_order() {
    let feed = MemoryFeed::new();
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", HandlerRegistry::new(), feed.clone())
            .expect("starts");
    let first = Client::connect(&endpoint.endpoint());
    assert_eq!(
        subscribe(&first, vec![subscription(BLOCK_COMMIT, None)], &[]).get_status(),
        ClientEventsSubscribeResponse_Status::OK
    );
    let blocks: Vec<_> = (0..3).map(|_| feed.commit(vec![])).collect();
    assert_eq!(
        committed_block_nums(&first, Duration::from_millis(500)),
        vec![0, 1, 2]
    );
    drop(first);
    for _ in 0..5 {
        feed.commit(vec![]);
    }
    let second = Client::connect(&endpoint.endpoint());
    let reply = subscribe(
        &second,
        vec![subscription(BLOCK_COMMIT, None)],
        &["not-a-block", &blocks[2].block_id],
    );
    assert_eq!(reply.get_status(), ClientEventsSubscribeResponse_Status::OK);
    feed.commit(vec![]);
    assert_eq!(
        committed_block_nums(&second, Duration::from_millis(700)),
        vec![3, 4, 5, 6, 7, 8]
    );
}

#[test]
fn the_null_block_id_replays_the_chain_from_genesis() {
    let feed = MemoryFeed::new();
    (0..4).for_each(|_| drop(feed.commit(vec![])));
    let endpoint =
        ComponentEndpoint::start("tcp://127.0.0.1:*", HandlerRegistry::new(), feed.clone())
            .expect("starts");
    let client = Client::connect(&endpoint.endpoint());
    subscribe(
        &client,
        vec![subscription(BLOCK_COMMIT, None)],
        &[super::events::NULL_BLOCK_ID],
    );
    assert_eq!(
        committed_block_nums(&client, Duration::from_millis(500)),
        vec![0, 1, 2, 3]
    );
}

#[test]
fn unknown_last_known_blocks_and_bad_filters_are_refused() {
    let feed = MemoryFeed::new();
    feed.commit(vec![]);
    let endpoint = ComponentEndpoint::start("tcp://127.0.0.1:*", HandlerRegistry::new(), feed)
        .expect("starts");
    let client = Client::connect(&endpoint.endpoint());
    let reply = subscribe(
        &client,
        vec![subscription(BLOCK_COMMIT, None)],
        &["feedbeef"],
    );
    assert_eq!(
        reply.get_status(),
        ClientEventsSubscribeResponse_Status::UNKNOWN_BLOCK
    );
    let bad = subscription(
        STATE_DELTA,
        Some((EventFilter_FilterType::REGEX_ANY, "address", "([")),
    );
    let reply = subscribe(&client, vec![bad], &[]);
    assert_eq!(
        reply.get_status(),
        ClientEventsSubscribeResponse_Status::INVALID_FILTER
    );
    assert!(reply
        .get_response_message()
        .contains("Invalid regular expression"));
}

#[test]
fn a_subscriber_that_stops_reading_neither_blocks_commits_nor_loses_blocks() {
    let feed = MemoryFeed::new();
    let settings = ComponentSettings {
        send_high_water_mark: 2,
        ..ComponentSettings::default()
    };
    let endpoint = ComponentEndpoint::start_with(
        "tcp://127.0.0.1:*",
        HandlerRegistry::new(),
        feed.clone(),
        settings,
    )
    .expect("starts");
    let client = Client::connect_with_rcvhwm(&endpoint.endpoint(), 2);
    let subs = vec![
        subscription(BLOCK_COMMIT, None),
        subscription(STATE_DELTA, None),
    ];
    subscribe(&client, subs, &[]);
    // ~8 MB of state-delta data: far beyond socket buffers while unread.
    let big = vec![7u8; 64 * 1024];
    for n in 0..120u32 {
        feed.commit(vec![receipt(&[(format!("{n:070}"), big.clone())], "x")]);
    }
    assert_eq!(
        committed_block_nums(&client, Duration::from_millis(1500)),
        (0..120).collect::<Vec<u64>>()
    );
}

#[test]
fn events_get_returns_the_events_of_the_named_blocks() {
    let feed = MemoryFeed::new();
    let blocks: Vec<_> = (0..3)
        .map(|_| feed.commit(vec![receipt(&[], "apples")]))
        .collect();
    let endpoint = ComponentEndpoint::start("tcp://127.0.0.1:*", HandlerRegistry::new(), feed)
        .expect("starts");
    let client = Client::connect(&endpoint.endpoint());
    let mut request = ClientEventsGetRequest::new();
    request.set_subscriptions(RepeatedField::from_vec(vec![subscription(
        BLOCK_COMMIT,
        None,
    )]));
    request.set_block_ids(RepeatedField::from_vec(vec![
        blocks[2].block_id.clone(),
        blocks[0].block_id.clone(),
    ]));
    let reply = client.request(
        Type::CLIENT_EVENTS_GET_REQUEST,
        &request,
        Type::CLIENT_EVENTS_GET_RESPONSE,
    );
    let reply = ClientEventsGetResponse::parse_from_bytes(&reply).expect("decodes");
    assert_eq!(reply.get_status(), ClientEventsGetResponse_Status::OK);
    let ids: Vec<_> = reply
        .get_events()
        .iter()
        .map(|e| e.get_attributes()[0].get_value().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![blocks[2].block_id.clone(), blocks[0].block_id.clone()]
    );
}

/// Stands in for the executor's context with input/output enforcement.
struct FencedContext {
    inner: MemoryState,
    allowed: Vec<String>,
}

impl FencedContext {
    fn allowing(prefixes: &[&str]) -> FencedContext {
        FencedContext {
            inner: Default::default(),
            allowed: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn check(&self, address: &str) -> Result<(), ContextError> {
        if self.allowed.iter().any(|p| address.starts_with(p.as_str())) {
            Ok(())
        } else {
            Err(ContextError::AuthorizationError(format!(
                "{address} is outside the declared inputs/outputs"
            )))
        }
    }
}

impl TransactionContext for FencedContext {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        addresses.iter().try_for_each(|a| self.check(a))?;
        self.inner.get_state_entries(addresses)
    }
    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        entries.iter().try_for_each(|(a, _)| self.check(a))?;
        self.inner.set_state_entries(entries)
    }
    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        addresses.iter().try_for_each(|a| self.check(a))?;
        self.inner.delete_state_entries(addresses)
    }
    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        self.inner.add_receipt_data(data)
    }
    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        self.inner.add_event(event_type, attributes, data)
    }
}

/// A context that kills the TP process when the TP first reads state.
struct KillOnRead {
    tp: Arc<Mutex<Option<TpProcess>>>,
}

impl TransactionContext for KillOnRead {
    fn get_state_entries(&self, _: &[String]) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        drop(self.tp.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(vec![])
    }
    fn set_state_entries(&self, _: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        Ok(())
    }
    fn delete_state_entries(&self, _: &[String]) -> Result<Vec<String>, ContextError> {
        Ok(vec![])
    }
    fn add_receipt_data(&self, _: &[u8]) -> Result<(), ContextError> {
        Ok(())
    }
    fn add_event(&self, _: String, _: Vec<(String, String)>, _: &[u8]) -> Result<(), ContextError> {
        Ok(())
    }
}

/// The in-process stand-in for intkey: writes a fixed mark so a test can
/// tell which handler ran.
struct InProcessIntkey;

impl TransactionHandler for InProcessIntkey {
    fn family_name(&self) -> String {
        "intkey".into()
    }
    fn family_versions(&self) -> Vec<String> {
        vec!["1.0".into()]
    }
    fn namespaces(&self) -> Vec<String> {
        vec![INTKEY_NS.into()]
    }
    fn apply(
        &self,
        request: &TpProcessRequest,
        context: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let name = std::str::from_utf8(request.get_payload())
            .unwrap_or_default()
            .split_whitespace()
            .nth(1);
        context.set_state_entry(
            intkey_address(name.unwrap_or_default()),
            IN_PROCESS_MARK.to_vec(),
        )?;
        Ok(())
    }
}
