"""The `intkey` 1.0 transaction family as Sawtooth defines it, shared by
intkey_tp.py and intkey_client.py: its name, namespace and addressing
(sha512('intkey')[:6] + sha512(name)[-64:]), and the event our TP adds.
"""
import hashlib

FAMILY_NAME = "intkey"
FAMILY_VERSION = "1.0"
NAMESPACE = hashlib.sha512(FAMILY_NAME.encode("utf-8")).hexdigest()[0:6]
CHANGED_EVENT = "intkey/changed"


def intkey_address(name):
    """The Sawtooth intkey address of a name."""
    return NAMESPACE + hashlib.sha512(name.encode("utf-8")).hexdigest()[-64:]
