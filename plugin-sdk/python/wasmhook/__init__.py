"""Write wasmhook plugins in Python.

A plugin handles one stored webhook event at a time, in a fresh WebAssembly instance. This
package wraps the bindings that componentize-py generates for the world `wasmhook:plugin/plugin`
(`wit/plugin.wit`, 0.1.1) in a small layer:

- `Event`, `Delivery`: what the handler receives; `event.json()` parses the payload once,
  `wasmhook.highlevel` turns it into typed records for the common HighLevel kinds;
- `api`: the host's capability-limited API client: `api.get("highlevel", "/contacts/x")`
  returns the parsed JSON answer and raises an `api.ApiError` subclass otherwise; `api.pages`,
  `api.items`, `api.get_cached`, `api.batch` and `api.bulk_tags` save API budget;
- `kv`, `config`, `log`: the key-value store scoped to (plugin, tenant), the manifest's
  `[config]` table, and structured logs;
- `Retry`, `Fail`: raise them to say the attempt did not succeed;
- `export(handle)`: makes the `WitWorld` class componentize-py looks for.

A complete plugin (`app.py`, built with `scripts/build-python-plugin DIR OUT.wasm`)::

    import wasmhook
    from wasmhook import api, highlevel, log

    def handle(event, delivery):
        contact = highlevel.Contact.from_event(event)
        api.post("highlevel", f"/contacts/{contact.id}/tags", json={"tags": ["new-lead"]})
        log.info("tagged contact", contact=contact.id)

    WitWorld = wasmhook.export(handle)

Errors a handler does not catch decide what the host does next: `Retry`/`Fail` as raised; an
`api.ApiError` or `kv.KvError` retries when another attempt could succeed (rate limits, 5xx,
timeouts, an unavailable store, re-authorisation) and fails otherwise (denied, 4xx);
`api.BudgetExhausted` retries after the wait the host named; any other exception is a bug
and retries with the host's backoff, its traceback in the plugin's log.
"""

from . import api, config, highlevel, kv, log
from .errors import Fail, HandlerError, Retry
from .event import Delivery, Event
from .export import export

__all__ = [
    "Delivery",
    "Event",
    "Fail",
    "HandlerError",
    "Retry",
    "api",
    "config",
    "export",
    "highlevel",
    "kv",
    "log",
]
