"""The entry point: `export(handle)` makes the `WitWorld` class that componentize-py exports as
the component's `handle`.

Invariant: nothing escapes the export but the WIT `handler-error`: SDK errors become `Retry` or
`Fail` by whether another attempt could succeed, and an unexpected exception is logged with its
traceback and retried with the host's backoff (a bug fixed by a new version then succeeds).
"""

import traceback

import wit_world
from componentize_py_types import Err

from . import log
from .errors import HandlerError, Retry
from .event import Delivery, Event


def export(handle):
    """Returns the `WitWorld` class for `handle(event, delivery)`; assign it at the top level of
    the entry module: `WitWorld = wasmhook.export(handle)`. Returning (any value) records the
    delivery as succeeded."""

    class WitWorld(wit_world.WitWorld):
        def handle(self, event, delivery):
            try:
                handle(Event.from_wit(event), Delivery.from_wit(delivery))
            except HandlerError as e:
                raise Err(e.to_wit()) from None
            except Exception as e:
                to_handler_error = getattr(e, "handler_error", None)
                if to_handler_error is not None:
                    raise Err(to_handler_error().to_wit()) from None
                log.error("unhandled exception", traceback="".join(traceback.format_exception(e)))
                raise Err(Retry(f"unhandled {type(e).__name__}: {e}").to_wit()) from None

    return WitWorld
