"""An intkey transaction processor written only with the official Sawtooth
Python SDK (`sawtooth_sdk.processor`), used by tests/python_sdk.rs to check
that `coldchain node`'s component endpoint serves a Python TP as a Sawtooth
validator does.

The family is Sawtooth's `intkey` 1.0: CBOR payloads {Verb, Name, Value},
addresses sha512('intkey')[:6] + sha512(Name)[-64:], each holding the CBOR
map {Name: Value}. The rules and messages follow the SDK's own intkey example.
Two additions exercise the rest of the TP protocol:

- verb `del` removes a name (TP_STATE_DELETE_REQUEST);
- every change adds an `intkey/changed` event (TP_EVENT_ADD_REQUEST) and the
  new state as receipt data (TP_RECEIPT_ADD_DATA_REQUEST); a `dec` below zero
  is refused with extended data (TpProcessResponse.extended_data).

With `--raw-header` the TP registers with Sawtooth 1.2's RAW header style
(protocol version 1): the validator then sends the header as its signed bytes
(`TpProcessRequest.header_bytes`) and no parsed header, and the TP checks the
transaction's signature over those bytes before applying it.

Usage: python intkey_tp.py tcp://127.0.0.1:4004 [--raw-header]
"""
import logging
import sys

import sawtooth_sdk_asyncio  # noqa: F401  (before any sawtooth_sdk import)

# pylint: disable=wrong-import-position,wrong-import-order
import cbor  # noqa: E402
from sawtooth_sdk.processor.core import TransactionProcessor  # noqa: E402
from sawtooth_sdk.processor.exceptions import InternalError  # noqa: E402
from sawtooth_sdk.processor.exceptions import InvalidTransaction  # noqa: E402
from sawtooth_sdk.processor.handler import TransactionHandler  # noqa: E402
from sawtooth_sdk.protobuf.processor_pb2 import TpRegisterRequest  # noqa: E402
from sawtooth_sdk.protobuf.transaction_pb2 import TransactionHeader  # noqa: E402
from sawtooth_signing import create_context  # noqa: E402
from sawtooth_signing.secp256k1 import Secp256k1PublicKey  # noqa: E402

from intkey import CHANGED_EVENT, FAMILY_NAME, FAMILY_VERSION, NAMESPACE  # noqa: E402
from intkey import intkey_address  # noqa: E402

LOGGER = logging.getLogger("intkey_tp")

VALID_VERBS = ("set", "inc", "dec", "del")
MIN_VALUE = 0
MAX_VALUE = 4294967295
MAX_NAME_LENGTH = 20


class IntkeyHandler(TransactionHandler):
    """Applies intkey transactions through the SDK's `Context`."""

    def __init__(self, raw_header=False):
        self._raw_header = raw_header

    @property
    def family_name(self):
        return FAMILY_NAME

    @property
    def family_versions(self):
        return [FAMILY_VERSION]

    @property
    def namespaces(self):
        return [NAMESPACE]

    def apply(self, transaction, context):
        if self._raw_header:
            check_raw_header(transaction)
        verb, name, value = decode_payload(transaction.payload)
        address = intkey_address(name)
        state = read_names(context, address)
        if verb == "del":
            if name not in state:
                raise InvalidTransaction('Verb is "del" but name "{}" not in state'.format(name))
            deleted = context.delete_state([address])
            if list(deleted) != [address]:
                raise InternalError("State error: deleting {} answered {}".format(address, deleted))
            context.add_event(CHANGED_EVENT, [("name", name), ("verb", verb), ("value", "")])
            context.add_receipt_data(cbor.dumps({}))
            return
        updated = apply_verb(verb, name, value, state)
        addresses = context.set_state({address: cbor.dumps(updated)})
        if list(addresses) != [address]:
            raise InternalError("State error: setting {} answered {}".format(address, addresses))
        context.add_event(
            CHANGED_EVENT,
            [("name", name), ("verb", verb), ("value", str(updated[name]))],
            cbor.dumps(updated),
        )
        context.add_receipt_data(cbor.dumps(updated))


def check_raw_header(transaction):
    """RAW style: no parsed header, and header_bytes are the bytes the signer signed."""
    if transaction.HasField("header"):
        raise InternalError("RAW header style, but the validator sent a parsed header")
    header = TransactionHeader()
    try:
        header.ParseFromString(transaction.header_bytes)
        signer = Secp256k1PublicKey.from_hex(header.signer_public_key)
    except Exception as error:
        raise InternalError("RAW header style, but header_bytes do not decode") from error
    if not create_context("secp256k1").verify(
        transaction.signature, transaction.header_bytes, signer
    ):
        raise InternalError("header_bytes are not the bytes the transaction signature covers")


def decode_payload(payload):
    """(verb, name, value) of a CBOR payload, validated."""
    try:
        content = cbor.loads(payload)
    except Exception as error:
        raise InvalidTransaction("Invalid payload serialization") from error
    if not isinstance(content, dict):
        raise InvalidTransaction("Invalid payload serialization")
    verb, name, value = content.get("Verb"), content.get("Name"), content.get("Value", 0)
    if verb is None:
        raise InvalidTransaction("Verb is required")
    if name is None:
        raise InvalidTransaction("Name is required")
    if verb not in VALID_VERBS:
        raise InvalidTransaction('Verb must be "set", "inc", "dec" or "del"')
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidTransaction(
            "Name must be a string of no more than {} characters".format(MAX_NAME_LENGTH)
        )
    if not isinstance(value, int) or value < MIN_VALUE or value > MAX_VALUE:
        raise InvalidTransaction(
            "Value must be an integer no less than {} and no greater than {}".format(
                MIN_VALUE, MAX_VALUE
            )
        )
    return verb, name, value


def read_names(context, address):
    """The {name: value} map stored at an address ({} when unset)."""
    entries = context.get_state([address])
    if not entries:
        return {}
    try:
        return cbor.loads(entries[0].data)
    except Exception as error:
        raise InternalError("Failed to load state data at {}".format(address)) from error


def apply_verb(verb, name, value, state):
    """The new {name: value} map after set, inc or dec."""
    current = state.get(name)
    if verb == "set":
        if current is not None:
            raise InvalidTransaction(
                'Verb is "set", but already exists: Name: {}, Value {}'.format(name, current)
            )
        result = value
    elif current is None:
        raise InvalidTransaction('Verb is "{}" but name "{}" not in state'.format(verb, name))
    elif verb == "inc":
        result = current + value
        if result > MAX_VALUE:
            raise InvalidTransaction(
                'Verb is "inc", but result would be greater than {}'.format(MAX_VALUE)
            )
    else:
        result = current - value
        if result < MIN_VALUE:
            raise InvalidTransaction(
                'Verb is "dec", but result would be less than {}'.format(MIN_VALUE),
                extended_data=cbor.dumps({name: current}),
            )
    updated = dict(state)
    updated[name] = result
    return updated


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--raw-header"):
        sys.exit(
            "usage: python intkey_tp.py <component endpoint, e.g. tcp://127.0.0.1:4004>"
            " [--raw-header]"
        )
    raw_header = len(argv) == 3
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    processor = TransactionProcessor(url=argv[1])
    if raw_header:
        processor.set_header_style(TpRegisterRequest.RAW)
    processor.add_handler(IntkeyHandler(raw_header))
    LOGGER.info("intkey TP (Python SDK) connecting to %s", argv[1])
    try:
        processor.start()
    finally:
        processor.stop()


if __name__ == "__main__":
    main(sys.argv)
