"""A small key-value store scoped to (plugin, tenant): other plugins and tenants never see it.

Values are bytes (`str` values are stored as UTF-8); `get_json` / `set_json` store JSON.
`ttl_ms` expires a value after that many milliseconds. `compare_and_swap(key, None, b"1")` is
"insert if absent": of concurrent callers exactly one gets `True`, which makes it the tool for
doing a side effect once per idempotency key.

Errors raise a `KvError` subclass; only `Unavailable` retries the delivery when uncaught (a
full quota or an oversized value fails the same way on the next attempt).
"""

import json as _json

from componentize_py_types import Err
from wit_world.imports import kv as _wit

from .errors import Fail, Retry


class KvError(Exception):
    """A refused key-value operation."""

    transient = False

    def handler_error(self):
        return Retry(str(self)) if self.transient else Fail(str(self))


class InvalidKey(KvError):
    """The key is empty or longer than the host allows."""


class TooLarge(KvError):
    """The value is larger than the host allows."""


class QuotaExceeded(KvError):
    """The (plugin, tenant) scope holds as much as it may."""


class Unavailable(KvError):
    """The store could not be reached; another attempt may succeed."""

    transient = True


_ERRORS = {
    _wit.KvError_InvalidKey: InvalidKey,
    _wit.KvError_TooLarge: TooLarge,
    _wit.KvError_QuotaExceeded: QuotaExceeded,
    _wit.KvError_Unavailable: Unavailable,
}


def _call(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        raise _ERRORS[type(e.value)](f"kv: {e.value.value}") from None


def _bytes(value):
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"kv values are bytes or str, not {type(value).__name__}")


def get(key):
    """The bytes stored under `key`, or `None` when absent or expired."""
    return _call(_wit.get, key)


def set(key, value, ttl_ms=None):
    """Stores `value` (bytes or str) under `key`, replacing any earlier value."""
    _call(_wit.set, key, _bytes(value), ttl_ms)


def delete(key):
    """Removes `key`; removing an absent key is not an error."""
    _call(_wit.delete, key)


def compare_and_swap(key, expected, desired, ttl_ms=None):
    """Atomically replaces the value under `key` with `desired` (`None` deletes it) if the
    current value equals `expected` (`None` = absent). Returns whether it swapped."""
    return _call(_wit.compare_and_swap, key, _bytes(expected), _bytes(desired), ttl_ms)


def get_json(key):
    """The JSON value under `key`, or `None` when absent. A value that is not JSON raises
    `Fail`."""
    raw = get(key)
    if raw is None:
        return None
    try:
        return _json.loads(raw)
    except ValueError as e:
        raise Fail(f"kv value `{key}` is not JSON: {e}") from None


def set_json(key, value, ttl_ms=None):
    """Stores `value` as JSON under `key`."""
    set(key, _json.dumps(value, separators=(",", ":")), ttl_ms)
