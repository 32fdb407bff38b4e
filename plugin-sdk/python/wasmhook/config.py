"""The plugin's own `[config]` table from its manifest (`name.toml`).

`get` returns strings as they are and other values (numbers, booleans, arrays, tables) as
JSON text, as the host hands them over; `all()` returns the whole table as a dict with its
TOML types. The table is fixed for the plugin version, so a missing or malformed value raises
`Fail`.
"""

import json as _json

from wit_world.imports import config as _wit

from .errors import Fail

_table = None


def get(key, default=None):
    """The value of top-level key `key` as text, or `default` when absent."""
    value = _wit.get(key)
    return default if value is None else value


def require(key):
    """The value of `key` as text; `Fail` naming the key when it is absent."""
    value = _wit.get(key)
    if value is None:
        raise Fail(f"config: `{key}` is missing from the manifest's [config]")
    return value


def all():
    """The whole `[config]` table as a dict (read once per delivery)."""
    global _table
    if _table is None:
        try:
            _table = _json.loads(_wit.all())
        except ValueError as e:
            raise Fail(f"config: the host's table is not JSON: {e}") from None
    return _table
