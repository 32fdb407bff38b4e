"""How a handler says an attempt did not succeed: raise `Retry` or `Fail`.

Invariant: every error the SDK raises (`api.ApiError`, `kv.KvError`, `config` and payload
errors) is a `HandlerError` or has a `handler_error()`; `export` turns them into the WIT
`handler-error` so a handler may let them propagate.
"""

from wit_world.imports import types


class HandlerError(Exception):
    """Base of `Retry` and `Fail`; `reason` is kept with the attempt and shown to operators."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = str(reason)

    def handler_error(self):
        return self

    def to_wit(self):
        raise NotImplementedError


class Retry(HandlerError):
    """A transient failure: the host runs the delivery again, up to the manifest's
    `max_attempts`, after its backoff or after `after_ms` milliseconds when given."""

    def __init__(self, reason, after_ms=None):
        super().__init__(reason)
        if after_ms is not None and (not isinstance(after_ms, int) or after_ms < 0):
            raise ValueError(f"after_ms must be a whole number of milliseconds >= 0, not {after_ms!r}")
        self.after_ms = after_ms

    def to_wit(self):
        return types.HandlerError_Retry(types.RetryRequest(self.reason, self.after_ms))


class Fail(HandlerError):
    """Retrying cannot help: the delivery is dead at once and operators are alerted."""

    def to_wit(self):
        return types.HandlerError_Fail(self.reason)
