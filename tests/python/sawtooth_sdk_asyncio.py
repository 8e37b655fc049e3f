"""Lets the official Sawtooth Python SDK 1.2.5 run on today's Python.

The SDK's ZeroMQ stream (`sawtooth_sdk.messaging.stream`) was written for
Python 3.5-3.8 and uses three asyncio APIs that are gone since:

- the `@asyncio.coroutine` decorator (removed in 3.11, when asyncio also
  stopped accepting generator-based coroutines): each decorated generator
  function becomes an `async def` awaiting the generator (`types.coroutine`
  makes it awaitable, and lets its `yield from` take futures and coroutines);
- `asyncio.Queue(loop=...)` (the argument was removed in 3.10): a queue
  binds to the running loop by itself now;
- `asyncio.Task.all_tasks(loop)` (removed in 3.9): `asyncio.all_tasks(loop)`.

Import this module before any `sawtooth_sdk` module. Apart from defining
`asyncio.coroutine` (needed while the SDK's modules are imported) it changes
only what the SDK's stream module sees as `asyncio`; the SDK's own code runs
unmodified. Tested with Python 3.11, 3.12 and 3.13 (tests/python_sdk.rs).
"""
import asyncio
import functools
import sys
import types

TESTED_PYTHONS = ((3, 11), (3, 12), (3, 13))

if sys.version_info[:2] not in TESTED_PYTHONS:
    sys.exit(
        "the Sawtooth Python SDK shims are tested with Python 3.11-3.13, this is {}.{}; "
        "create the venv with one of those (scripts/setup.sh --test)".format(
            *sys.version_info[:2]
        )
    )


def _generator_coroutine(function):
    """What `@asyncio.coroutine` did: a coroutine function running a generator."""
    generator_function = types.coroutine(function)

    @functools.wraps(function)
    async def run(*args, **kwargs):
        return await generator_function(*args, **kwargs)

    return run


if not hasattr(asyncio, "coroutine"):
    asyncio.coroutine = _generator_coroutine

# pylint: disable=wrong-import-position
from sawtooth_sdk.messaging import stream as _sdk_stream  # noqa: E402


class _QueueIgnoringLoop(asyncio.Queue):
    """`asyncio.Queue` that accepts (and ignores) the removed `loop` argument."""

    def __init__(self, maxsize=0, *, loop=None):  # pylint: disable=unused-argument
        super().__init__(maxsize)


class _TaskWithAllTasks:
    """Stands in for `asyncio.Task` where the SDK calls `Task.all_tasks(loop)`."""

    @staticmethod
    def all_tasks(loop=None):
        return asyncio.all_tasks(loop)


_asyncio_for_sdk = types.SimpleNamespace(
    **{name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("__")}
)
_asyncio_for_sdk.Queue = _QueueIgnoringLoop
_asyncio_for_sdk.Task = _TaskWithAllTasks
_sdk_stream.asyncio = _asyncio_for_sdk
