// Write wasmhook plugins in JavaScript.
//
// A plugin handles one stored webhook event at a time, in a fresh WebAssembly instance. This
// module wraps the bindings componentize-js generates for the world `wasmhook:plugin/plugin`
// (`wit/plugin.wit`, 0.1.1) in a small layer:
//
// - `Event`, `Delivery`: what the handler receives; `event.json()` parses the payload once,
//   `highlevel` turns it into records for the common HighLevel kinds;
// - `api`: the host's capability-limited API client: `api.get('highlevel', '/contacts/x')`
//   returns the parsed JSON answer and throws an `api.ApiError` subclass otherwise;
//   `api.pages`, `api.items`, `api.getCached`, `api.batch` and `api.bulkTags` save API budget;
// - `kv`, `config`, `log`: the key-value store scoped to (plugin, tenant), the manifest's
//   `[config]` table, and structured logs;
// - `Retry`, `Fail`: throw them to say the attempt did not succeed;
// - `handler(fn)`: makes the `handle` export.
//
// A complete plugin (`plugin.js`, built with `scripts/build-js-plugin DIR OUT.wasm`):
//
//   import { api, handler, highlevel, log } from 'wasmhook';
//
//   export const handle = handler((event) => {
//     const contact = highlevel.contact(event);
//     api.post('highlevel', `/contacts/${contact.id}/tags`, { json: { tags: ['new-lead'] } });
//     log.info('tagged contact', { contact: contact.id });
//   });
//
// Errors a handler does not catch decide what the host does next: `Retry`/`Fail` as thrown; an
// `api.ApiError` or `kv.KvError` retries when another attempt could succeed (rate limits, 5xx,
// timeouts, an unavailable store, re-authorisation) and fails otherwise (denied, 4xx);
// `api.BudgetExhausted` retries after the wait the host named; anything else is a bug and
// retries with the host's backoff, its stack in the plugin's log.

import * as api from './api.js';
import * as config from './config.js';
import { Fail, HandlerError, Retry } from './errors.js';
import { Delivery, Event } from './event.js';
import * as highlevel from './highlevel.js';
import * as kv from './kv.js';
import * as log from './log.js';

export { api, config, highlevel, kv, log, Delivery, Event, Fail, HandlerError, Retry };

/**
 * The component's `handle` export for `fn(event, delivery)`: `export const handle =
 * handler(fn)` in the entry module. Returning (any value) records the delivery as succeeded.
 *
 * Invariant: nothing escapes but the WIT `handler-error`, thrown the way componentize-js
 * expects (an error whose `payload` is the variant).
 */
export function handler(fn) {
  return (event, delivery) => {
    try {
      fn(new Event(event), new Delivery(delivery));
    } catch (e) {
      throw witError(e);
    }
  };
}

function witError(e) {
  let outcome;
  if (e instanceof HandlerError) {
    outcome = e;
  } else if (e && typeof e.handlerError === 'function') {
    outcome = e.handlerError();
  } else {
    const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    log.error('unhandled exception', { stack: e?.stack ?? what });
    outcome = new Retry(`unhandled ${what}`);
  }
  const error = new Error(outcome.reason);
  error.payload = outcome.toWit();
  return error;
}
