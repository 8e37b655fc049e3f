"""The Sawtooth side of intkey_client.py, built only from the official Python
SDK: batches signed with `sawtooth_signing` and the SDK's protobufs, the
node's REST API over urllib, and an event subscriber on the SDK's ZeroMQ
`Stream`. Each answer's shape is checked through a `Checks`.
"""
import hashlib
import json
import secrets
import sys
import time
import urllib.error
import urllib.request

import sawtooth_sdk_asyncio  # noqa: F401  (before any sawtooth_sdk import)

# pylint: disable=wrong-import-position,wrong-import-order
import cbor  # noqa: E402
from sawtooth_sdk.messaging.stream import Stream  # noqa: E402
from sawtooth_sdk.protobuf.batch_pb2 import Batch, BatchHeader, BatchList  # noqa: E402
from sawtooth_sdk.protobuf.client_event_pb2 import (  # noqa: E402
    ClientEventsGetRequest,
    ClientEventsGetResponse,
    ClientEventsSubscribeRequest,
    ClientEventsSubscribeResponse,
    ClientEventsUnsubscribeRequest,
    ClientEventsUnsubscribeResponse,
)
from sawtooth_sdk.protobuf.events_pb2 import EventFilter, EventList, EventSubscription  # noqa: E402
from sawtooth_sdk.protobuf.network_pb2 import PingResponse  # noqa: E402
from sawtooth_sdk.protobuf.transaction_pb2 import Transaction, TransactionHeader  # noqa: E402
from sawtooth_sdk.protobuf.validator_pb2 import Message  # noqa: E402
from sawtooth_signing import CryptoFactory, create_context  # noqa: E402

from intkey import CHANGED_EVENT, FAMILY_NAME, FAMILY_VERSION, NAMESPACE  # noqa: E402
from intkey import intkey_address  # noqa: E402

# POST /batches is refused until the TP has registered (it connects asynchronously).
REGISTRATION_WAIT_S = 60
STATUS_WAIT_S = 60
EVENT_WAIT_S = 20


class CheckFailed(Exception):
    """A node answer differs from what a Sawtooth validator gives."""


class Checks:
    """Counts passed checks; collects documented deviations."""

    def __init__(self):
        self.passed = 0
        self.deviations = []

    def that(self, condition, message):
        if not condition:
            raise CheckFailed(message)
        self.passed += 1

    def deviate(self, name, description):
        """Notes a known difference from Sawtooth (printed to stderr)."""
        print("deviation {}: {}".format(name, description), file=sys.stderr)
        self.deviations.append(name)

    def equal(self, actual, expected, what):
        self.that(actual == expected, "{}: expected {!r}, got {!r}".format(what, expected, actual))


class Rest:
    """The node's Sawtooth REST API, over urllib."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def request(self, method, path, body=None, content_type=None):
        """(HTTP status, parsed JSON body)."""
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=STATUS_WAIT_S + 10) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"raw": text.decode("utf-8", "replace")}

    def get(self, path):
        return self.request("GET", path)


class Submitter:
    """Builds, signs and submits intkey batches with sawtooth_signing."""

    def __init__(self, rest, checks):
        context = create_context("secp256k1")
        self.signer = CryptoFactory(context).new_signer(context.new_random_private_key())
        self.public_key = self.signer.get_public_key().as_hex()
        self.rest = rest
        self.checks = checks

    def transaction(self, verb=None, name=None, value=None, payload=None, addresses=None):
        """A signed intkey transaction; `addresses` overrides its inputs/outputs."""
        if payload is None:
            content = {"Verb": verb, "Name": name}
            if value is not None:
                content["Value"] = value
            payload = cbor.dumps(content)
        if addresses is None:
            addresses = [intkey_address(name)]
        header = TransactionHeader(
            family_name=FAMILY_NAME,
            family_version=FAMILY_VERSION,
            inputs=addresses,
            outputs=addresses,
            signer_public_key=self.public_key,
            batcher_public_key=self.public_key,
            dependencies=[],
            payload_sha512=hashlib.sha512(payload).hexdigest(),
            nonce=secrets.token_hex(16),
        ).SerializeToString()
        return Transaction(
            header=header, header_signature=self.signer.sign(header), payload=payload
        )

    def batch(self, transactions):
        header = BatchHeader(
            signer_public_key=self.public_key,
            transaction_ids=[t.header_signature for t in transactions],
        ).SerializeToString()
        return Batch(
            header=header, header_signature=self.signer.sign(header), transactions=transactions
        )

    def submit(self, batches, wait_for_processor=False):
        """POSTs a BatchList; returns the batch ids."""
        body = BatchList(batches=batches).SerializeToString()
        deadline = time.monotonic() + REGISTRATION_WAIT_S
        while True:
            status, reply = self.rest.request(
                "POST", "/batches", body, "application/octet-stream"
            )
            refused_for_no_tp = status == 400 and "no transaction processor" in json.dumps(reply)
            if not (wait_for_processor and refused_for_no_tp and time.monotonic() < deadline):
                break
            time.sleep(0.2)
        self.checks.equal(status, 202, "POST /batches status (reply {})".format(reply))
        ids = [b.header_signature for b in batches]
        self.checks.that(
            reply.get("link", "").endswith("/batch_statuses?id=" + ",".join(ids)),
            "POST /batches link names the batch ids: {}".format(reply),
        )
        return ids

    def final_statuses(self, ids):
        """{batch id: status entry} once none is PENDING."""
        deadline = time.monotonic() + STATUS_WAIT_S
        while True:
            status, reply = self.rest.get("/batch_statuses?id={}&wait=5".format(",".join(ids)))
            self.checks.equal(status, 200, "GET /batch_statuses status")
            entries = {entry["id"]: entry for entry in reply["data"]}
            self.checks.equal(sorted(entries), sorted(ids), "batch_statuses ids")
            if all(e["status"] != "PENDING" for e in entries.values()):
                return entries
            if time.monotonic() > deadline:
                raise CheckFailed(
                    "batches still PENDING after {} s: {}".format(STATUS_WAIT_S, reply)
                )

    def run(self, transactions, wait_for_processor=False):
        """Submits one batch and returns its final status entry."""
        ids = self.submit([self.batch(transactions)], wait_for_processor)
        return self.final_statuses(ids)[ids[0]]


class EventSubscriber:
    """A Sawtooth event subscriber on the SDK's own ZeroMQ `Stream`."""

    def __init__(self, component, checks):
        self.stream = Stream(component)
        self.checks = checks
        self.lists = []

    def ask(self, message_type, request, response_type, reply_class):
        future = self.stream.send(message_type, request.SerializeToString())
        result = future.result(10)
        self.checks.equal(
            Message.MessageType.Name(result.message_type),
            Message.MessageType.Name(response_type),
            "reply type to {}".format(Message.MessageType.Name(message_type)),
        )
        reply = reply_class()
        reply.ParseFromString(result.content)
        return reply

    def subscribe(self):
        request = ClientEventsSubscribeRequest(
            subscriptions=subscriptions(), last_known_block_ids=[]
        )
        reply = self.ask(
            Message.CLIENT_EVENTS_SUBSCRIBE_REQUEST,
            request,
            Message.CLIENT_EVENTS_SUBSCRIBE_RESPONSE,
            ClientEventsSubscribeResponse,
        )
        self.checks.equal(
            ClientEventsSubscribeResponse.Status.Name(reply.status),
            "OK",
            "subscribe status ({})".format(reply.response_message),
        )

    def collect_until(self, done):
        """Reads CLIENT_EVENTS (answering pings) until done(lists) or EVENT_WAIT_S."""
        deadline = time.monotonic() + EVENT_WAIT_S
        while not done(self.lists):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                message = self.stream.receive().result(left)
            except Exception:  # concurrent.futures.TimeoutError and friends
                return
            if message.message_type == Message.PING_REQUEST:
                self.stream.send_back(
                    Message.PING_RESPONSE,
                    message.correlation_id,
                    PingResponse().SerializeToString(),
                )
            elif message.message_type == Message.CLIENT_EVENTS:
                events = EventList()
                events.ParseFromString(message.content)
                self.lists.append(list(events.events))

    def get_events(self, block_ids):
        request = ClientEventsGetRequest(subscriptions=subscriptions(), block_ids=block_ids)
        reply = self.ask(
            Message.CLIENT_EVENTS_GET_REQUEST,
            request,
            Message.CLIENT_EVENTS_GET_RESPONSE,
            ClientEventsGetResponse,
        )
        self.checks.equal(
            ClientEventsGetResponse.Status.Name(reply.status), "OK", "CLIENT_EVENTS_GET status"
        )
        return list(reply.events)

    def unsubscribe(self):
        reply = self.ask(
            Message.CLIENT_EVENTS_UNSUBSCRIBE_REQUEST,
            ClientEventsUnsubscribeRequest(),
            Message.CLIENT_EVENTS_UNSUBSCRIBE_RESPONSE,
            ClientEventsUnsubscribeResponse,
        )
        self.checks.equal(
            ClientEventsUnsubscribeResponse.Status.Name(reply.status), "OK", "unsubscribe status"
        )

    def close(self):
        self.stream.close()


def subscriptions():
    return [
        EventSubscription(event_type="sawtooth/block-commit"),
        EventSubscription(event_type=CHANGED_EVENT),
        EventSubscription(
            event_type="sawtooth/state-delta",
            filters=[
                EventFilter(
                    key="address",
                    match_string="^" + NAMESPACE,
                    filter_type=EventFilter.REGEX_ANY,
                )
            ],
        ),
    ]
