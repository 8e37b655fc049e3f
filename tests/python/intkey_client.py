"""A Sawtooth client written only with the official Python SDK's signing
library (`sawtooth_signing`), its protobufs and its ZeroMQ `Stream`, run by
tests/python_sdk.rs against `coldchain node` with intkey_tp.py connected.

It signs intkey batches, submits them to the REST API (`POST /batches`),
waits on `/batch_statuses?wait`, reads state back (`/state`, `/receipts`) and,
over the component endpoint, subscribes to block-commit, state-delta and
intkey events (CLIENT_EVENTS_SUBSCRIBE/GET/UNSUBSCRIBE). Every answer is
checked against what a Sawtooth 1.2 validator gives. The SDK side (signing,
REST, event stream) is in intkey_sdk_client.py; this file is the scenario.

Prints one JSON line on success: {"checks": n, "deviations": [names]} where a
deviation is a known difference from Sawtooth that does not stop the run
(described on stderr). Any failed check exits 1 with the reason on stderr.

Usage: python intkey_client.py --url http://127.0.0.1:8008
           --component tcp://127.0.0.1:4004 [--idle-seconds 35 | --after-restart]
"""
import argparse
import base64
import json
import os
import sys
import traceback
import time

import sawtooth_sdk_asyncio  # noqa: F401  (before any sawtooth_sdk import)

# pylint: disable=wrong-import-position,wrong-import-order
import cbor  # noqa: E402
from sawtooth_sdk.protobuf.transaction_receipt_pb2 import StateChange, StateChangeList  # noqa: E402

from intkey import CHANGED_EVENT, NAMESPACE, intkey_address  # noqa: E402
from intkey_sdk_client import CheckFailed, Checks, EventSubscriber, Rest, Submitter  # noqa: E402


def attributes(event):
    return {a.key: a.value for a in event.attributes}


def decode_b64(text):
    return base64.b64decode(text.encode("ascii"))


def state_value(rest, checks, name):
    """The {name: value} map at a name's address, or None on 404."""
    status, reply = rest.get("/state/" + intkey_address(name))
    if status == 404:
        return None, reply
    checks.equal(status, 200, "GET /state/{} status ({})".format(intkey_address(name), reply))
    return cbor.loads(decode_b64(reply["data"])), reply


def check_committed(checks, entry, what):
    checks.equal(entry["status"], "COMMITTED", "{} (status {})".format(what, entry))


def check_invalid(checks, entry, message, what):
    checks.equal(entry["status"], "INVALID", "{} status ({})".format(what, entry))
    invalid = entry.get("invalid_transactions", [])
    checks.equal(len(invalid), 1, "{}: invalid_transactions".format(what))
    checks.that(
        invalid[0]["message"].startswith(message),
        "{}: the handler's message {!r} is reported, got {!r}".format(
            what, message, invalid[0]["message"]
        ),
    )
    return invalid[0]


class Scenario:
    """The intkey run, step by step; later steps check what earlier ones did."""

    def __init__(self, rest, component):
        self.rest = rest
        self.checks = Checks()
        self.submitter = Submitter(rest, self.checks)
        self.subscriber = EventSubscriber(component, self.checks)
        # (name, verb, value attribute) of each committed change, in order.
        self.expected_changes = []
        self.inc_a = None
        self.del_b = None

    def state(self, name):
        return state_value(self.rest, self.checks, name)[0]

    def commit_changes(self):
        """set, inc, dec in two batches; the second reads what the first wrote."""
        submitter, checks = self.submitter, self.checks
        # The first submission waits until the Python TP has registered.
        entry = submitter.run(
            [submitter.transaction("set", "a", 10), submitter.transaction("set", "b", 3)],
            wait_for_processor=True,
        )
        check_committed(checks, entry, "set a=10, set b=3")
        self.inc_a = submitter.transaction("inc", "a", 5)
        entry = submitter.run([self.inc_a, submitter.transaction("dec", "b", 3)])
        check_committed(checks, entry, "inc a 5, dec b 3")
        self.expected_changes += [
            ("a", "set", "10"), ("b", "set", "3"), ("a", "inc", "15"), ("b", "dec", "0")
        ]
        checks.equal(self.state("a"), {"a": 15}, "state of a after inc")
        checks.equal(self.state("b"), {"b": 0}, "state of b after dec")

    def refuse_in_one_batch_list(self):
        """Six batches in one BatchList: five refused by the handler or by the
        node's input/output enforcement, one valid; each settles on its own."""
        submitter, checks = self.submitter, self.checks
        dec_b = submitter.transaction("dec", "b", 1)
        batches = {
            "dec below zero": submitter.batch([dec_b]),
            "set then failing dec": submitter.batch(
                [submitter.transaction("set", "c", 1), submitter.transaction("dec", "c", 5)]
            ),
            "set existing": submitter.batch([submitter.transaction("set", "a", 1)]),
            "undeclared input": submitter.batch(
                [submitter.transaction("inc", "a", 1, addresses=[intkey_address("zzz")])]
            ),
            "bad payload": submitter.batch(
                [submitter.transaction(payload=b"\xff not cbor", name="a")]
            ),
            "set d": submitter.batch([submitter.transaction("set", "d", 7)]),
        }
        ids = submitter.submit(list(batches.values()))
        statuses = dict(zip(batches, (submitter.final_statuses(ids)[i] for i in ids)))
        below_zero = check_invalid(
            checks,
            statuses["dec below zero"],
            'Verb is "dec", but result would be less than 0',
            "dec b 1 below zero",
        )
        checks.equal(below_zero["id"], dec_b.header_signature, "invalid transaction id")
        self.check_extended_data(below_zero, cbor.dumps({"b": 0}))
        check_invalid(
            checks,
            statuses["set then failing dec"],
            'Verb is "dec", but result would be less than 0',
            "set c 1 then dec c 5 in one batch",
        )
        check_invalid(
            checks,
            statuses["set existing"],
            'Verb is "set", but already exists: Name: a, Value 15',
            "set a again",
        )
        self.check_undeclared_access(statuses["undeclared input"])
        check_invalid(
            checks, statuses["bad payload"], "Invalid payload serialization", "undecodable payload"
        )
        check_committed(checks, statuses["set d"], "set d=7 beside invalid batches")
        self.expected_changes.append(("d", "set", "7"))
        checks.equal(self.state("b"), {"b": 0}, "b unchanged by the refused dec")
        checks.equal(self.state("c"), None, "c absent: a batch is all or nothing")
        checks.equal(self.state("a"), {"a": 15}, "a unchanged by refused batches")

    def check_extended_data(self, invalid, extended_data):
        """Sawtooth reports a TP's extended_data, base64, with the invalid transaction."""
        expected = base64.b64encode(extended_data).decode("ascii")
        if invalid.get("extended_data") != expected:
            self.checks.deviate(
                "extended-data-dropped",
                "the TP's TpProcessResponse.extended_data is not reported in /batch_statuses "
                "invalid_transactions[].extended_data (got {!r}, Sawtooth gives {!r})".format(
                    invalid.get("extended_data"), expected
                ),
            )

    def check_undeclared_access(self, entry):
        """Sawtooth answers the TP's state get AUTHORIZATION_ERROR and reports
        whatever the TP then answers (the SDK: INVALID_TRANSACTION "Tried to
        get unauthorized address: [...]")."""
        message = "".join(t["message"] for t in entry.get("invalid_transactions", []))
        if entry["status"] == "INVALID" and "not in its declared inputs" in message:
            self.checks.deviate(
                "access-violation-overrides-tp-answer",
                "a state access outside the declared inputs is reported with the node's own "
                "message {!r}, not the message of the TP's TpProcessResponse".format(message),
            )
            return
        check_invalid(
            self.checks,
            entry,
            "Tried to get unauthorized address",
            "inc a with inputs/outputs not covering a's address",
        )

    def delete(self):
        self.del_b = self.submitter.transaction("del", "b")
        check_committed(self.checks, self.submitter.run([self.del_b]), "del b")
        self.expected_changes.append(("b", "del", ""))
        value, reply = state_value(self.rest, self.checks, "b")
        self.checks.equal(value, None, "b is gone after del (reply {})".format(reply))

    def check_reads(self):
        """State listing and receipts (with the TP's receipt data and events);
        returns the head block id."""
        rest, checks = self.rest, self.checks
        status, reply = rest.get("/state?address=" + NAMESPACE)
        checks.equal(status, 200, "GET /state?address= status")
        listed = {e["address"]: cbor.loads(decode_b64(e["data"])) for e in reply["data"]}
        checks.equal(
            listed,
            {intkey_address("a"): {"a": 15}, intkey_address("d"): {"d": 7}},
            "intkey state listing",
        )
        head = reply["head"]
        ids = (self.inc_a.header_signature, self.del_b.header_signature)
        status, reply = rest.get("/receipts?id={},{}".format(*ids))
        checks.equal(status, 200, "GET /receipts status ({})".format(reply))
        inc_receipt, del_receipt = reply["data"]
        checks.equal(inc_receipt["id"], ids[0], "receipt id (Sawtooth 1.2 renames transaction_id to id)")
        checks.equal(
            [cbor.loads(decode_b64(d)) for d in inc_receipt["data"]],
            [{"a": 15}],
            "receipt data added by the TP",
        )
        checks.equal(
            [(c["address"], c["type"], cbor.loads(decode_b64(c["value"])))
             for c in inc_receipt["state_changes"]],
            [(intkey_address("a"), "SET", {"a": 15})],
            "receipt state changes of inc a",
        )
        checks.equal(
            [(e["event_type"], {a["key"]: a["value"] for a in e["attributes"]})
             for e in inc_receipt["events"]],
            [(CHANGED_EVENT, {"name": "a", "verb": "inc", "value": "15"})],
            "receipt events of inc a",
        )
        checks.equal(
            [(c["address"], c["type"]) for c in del_receipt["state_changes"]],
            [(intkey_address("b"), "DELETE")],
            "receipt state changes of del b",
        )
        return head

    def check_events(self, head):
        """One EventList per block, each opening with its block-commit, in
        block order, with the intkey changes in commit order and the state
        deltas of the intkey addresses; the last block is the head."""
        checks, subscriber = self.checks, self.subscriber
        subscriber.collect_until(
            lambda lists: len(changes_in(lists)) >= len(self.expected_changes)
        )
        checks.equal(changes_in(subscriber.lists), self.expected_changes, "intkey/changed events")
        commits = []
        for events in subscriber.lists:
            checks.that(
                events and events[0].event_type == "sawtooth/block-commit",
                "an EventList opens with sawtooth/block-commit: {}".format(events),
            )
            commits.append(attributes(events[0]))
        block_nums = [int(c["block_num"]) for c in commits]
        checks.equal(
            block_nums,
            list(range(block_nums[0], block_nums[0] + len(block_nums))),
            "one EventList per block, in order",
        )
        checks.equal(
            deltas_in(subscriber.lists).get(intkey_address("b")),
            [("SET", {"b": 3}), ("SET", {"b": 0}), ("DELETE", None)],
            "state-delta events for b",
        )
        checks.equal(commits[-1]["block_id"], head, "the last block-commit is the state's head")
        status, reply = self.rest.get("/blocks/" + head)
        checks.equal(status, 200, "GET /blocks/{head} status")
        checks.equal(
            commits[-1]["state_root_hash"],
            reply["data"]["header"]["state_root_hash"],
            "block-commit state_root_hash",
        )
        checks.equal(
            [e.event_type for e in subscriber.get_events([head])],
            ["sawtooth/block-commit", CHANGED_EVENT, "sawtooth/state-delta"],
            "CLIENT_EVENTS_GET of the head block",
        )

    def stay_idle(self, seconds):
        """Idle past the node's heartbeat and TP idle timeout: the Python SDK
        answers the node's PING_REQUESTs, so the TP stays registered and the
        next transaction still executes."""
        time.sleep(seconds)
        entry = self.submitter.run([self.submitter.transaction("inc", "a", 1)])
        check_committed(self.checks, entry, "inc a after idling")
        self.checks.equal(self.state("a"), {"a": 16}, "state of a after idling")


def changes_in(event_lists):
    """(name, verb, value) of the intkey/changed events, in order."""
    return [
        (attributes(e)["name"], attributes(e)["verb"], attributes(e)["value"])
        for events in event_lists
        for e in events
        if e.event_type == CHANGED_EVENT
    ]


def deltas_in(event_lists):
    """{intkey address: [(SET/DELETE, decoded value)]} from the state-delta events."""
    deltas = {}
    for events in event_lists:
        for event in events:
            if event.event_type != "sawtooth/state-delta":
                continue
            changes = StateChangeList()
            changes.ParseFromString(event.data)
            for change in changes.state_changes:
                if change.address.startswith(NAMESPACE):
                    deltas.setdefault(change.address, []).append(
                        (StateChange.Type.Name(change.type),
                         cbor.loads(change.value) if change.value else None)
                    )
    return deltas


def run_scenario(rest, component, idle_seconds):
    scenario = Scenario(rest, component)
    scenario.subscriber.subscribe()
    scenario.commit_changes()
    scenario.refuse_in_one_batch_list()
    scenario.delete()
    head = scenario.check_reads()
    scenario.check_events(head)
    scenario.subscriber.unsubscribe()
    scenario.subscriber.close()
    if idle_seconds > 0:
        scenario.stay_idle(idle_seconds)
    return scenario.checks


def check_after_restart(rest):
    """After the node restarted on its data: state kept, the TP registered again."""
    checks = Checks()
    submitter = Submitter(rest, checks)
    checks.equal(state_value(rest, checks, "a")[0], {"a": 15}, "a after the node restart")
    checks.equal(state_value(rest, checks, "d")[0], {"d": 7}, "d after the node restart")
    entry = submitter.run([submitter.transaction("inc", "a", 1)], wait_for_processor=True)
    check_committed(checks, entry, "inc a through the re-registered TP")
    checks.equal(state_value(rest, checks, "a")[0], {"a": 16}, "state of a after the restart")
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="the node's REST API, e.g. http://127.0.0.1:8008"
    )
    parser.add_argument("--component", required=True, help="the node's component endpoint")
    parser.add_argument(
        "--idle-seconds", type=float, default=0,
        help="stay idle this long before a last transaction (checks pings keep the TP registered)",
    )
    parser.add_argument(
        "--after-restart", action="store_true",
        help="only check a node restarted after a full run: state kept, the TP registered again",
    )
    args = parser.parse_args()
    code = 0
    try:
        if args.after_restart:
            checks = check_after_restart(Rest(args.url))
        else:
            checks = run_scenario(Rest(args.url), args.component, args.idle_seconds)
        print(json.dumps({"checks": checks.passed, "deviations": checks.deviations}))
    except CheckFailed as failure:
        print("check failed: {}".format(failure), file=sys.stderr)
        code = 1
    except Exception:  # an answer of an unexpected shape: fail now, not at the deadline
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's Stream runs a non-daemon thread that a failed run leaves
    # connected; exit without waiting for it.
    os._exit(code)


if __name__ == "__main__":
    main()
