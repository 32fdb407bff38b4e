"""What a handler receives: the stored `Event` and the `Delivery` attempt running it.

Both are read-only views of the WIT records. The payload stays the raw JSON text the sender
signed; `Event.json()` parses it on first use and keeps the result.
"""

import json

from .errors import Fail


class Event:
    """One stored webhook; every field is stable across redeliveries.

    `id` (e.g. HighLevel `webhookId`), `source` (the configured source name), `kind` (e.g.
    `InboundMessage`, empty when the sender names none), `tenant` (HighLevel `locationId`,
    `companyId` or `altId`), `received_at_ms` (when the host accepted it, ms since the epoch)
    and `payload` (the raw JSON text).
    """

    __slots__ = ("id", "source", "kind", "tenant", "received_at_ms", "payload", "_json")

    def __init__(self, id, source, kind, tenant, received_at_ms, payload):
        self.id = id
        self.source = source
        self.kind = kind
        self.tenant = tenant
        self.received_at_ms = received_at_ms
        self.payload = payload
        self._json = None

    @classmethod
    def from_wit(cls, event):
        return cls(event.id, event.source, event.kind, event.tenant, event.received_at_ms, event.payload)

    def json(self):
        """The payload parsed as JSON (parsed once). A payload that is not a JSON object
        raises `Fail`: the same bytes come back on every attempt."""
        if self._json is None:
            try:
                value = json.loads(self.payload)
            except ValueError as e:
                raise Fail(f"event payload is not JSON: {e}") from None
            if not isinstance(value, dict):
                raise Fail(f"event payload is a JSON {type(value).__name__}, not an object")
            self._json = value
        return self._json

    def __repr__(self):
        return f"Event(id={self.id!r}, source={self.source!r}, kind={self.kind!r}, tenant={self.tenant!r})"


class Delivery:
    """One attempt to run this plugin on one event: `id` (stable across attempts), `attempt`
    (1 for the first) and `idempotency_key` (stable across attempts and redeliveries: use it
    to make side effects idempotent)."""

    __slots__ = ("id", "attempt", "idempotency_key")

    def __init__(self, id, attempt, idempotency_key):
        self.id = id
        self.attempt = attempt
        self.idempotency_key = idempotency_key

    @classmethod
    def from_wit(cls, delivery):
        return cls(delivery.id, delivery.attempt, delivery.idempotency_key)

    @property
    def is_retry(self):
        """Whether an earlier attempt of this delivery ran (and did not succeed)."""
        return self.attempt > 1

    def __repr__(self):
        return f"Delivery(id={self.id!r}, attempt={self.attempt})"
