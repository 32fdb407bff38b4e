// What a handler receives: the stored `Event` and the `Delivery` attempt running it.
//
// Both are read-only views of the WIT records. The payload stays the raw JSON text the sender
// signed; `event.json()` parses it on first use and keeps the result.

import { Fail } from './errors.js';

/**
 * One stored webhook; every field is stable across redeliveries: `id` (e.g. HighLevel
 * `webhookId`), `source` (the configured source name), `kind` (e.g. `OpportunityStatusUpdate`,
 * empty when the sender names none), `tenant` (HighLevel `locationId`, `companyId` or
 * `altId`), `receivedAtMs` (when the host accepted it, ms since the epoch) and `payload` (the
 * raw JSON text).
 */
export class Event {
  #json;

  constructor({ id, source, kind, tenant, receivedAtMs, payload }) {
    this.id = id;
    this.source = source;
    this.kind = kind;
    this.tenant = tenant;
    this.receivedAtMs = Number(receivedAtMs);
    this.payload = payload;
    Object.freeze(this);
  }

  /**
   * The payload parsed as JSON (parsed once). A payload that is not a JSON object throws
   * `Fail`: the same bytes come back on every attempt.
   */
  json() {
    if (this.#json === undefined) {
      let value;
      try {
        value = JSON.parse(this.payload);
      } catch (e) {
        throw new Fail(`event payload is not JSON: ${e.message}`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new Fail('event payload is not a JSON object');
      }
      this.#json = value;
    }
    return this.#json;
  }
}

/**
 * One attempt to run this plugin on one event: `id` (stable across attempts), `attempt` (1 for
 * the first) and `idempotencyKey` (stable across attempts and redeliveries: use it to make side
 * effects idempotent).
 */
export class Delivery {
  constructor({ id, attempt, idempotencyKey }) {
    this.id = id;
    this.attempt = attempt;
    this.idempotencyKey = idempotencyKey;
    Object.freeze(this);
  }

  /** Whether an earlier attempt of this delivery ran (and did not succeed). */
  get isRetry() {
    return this.attempt > 1;
  }
}
