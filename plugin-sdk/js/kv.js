// A small key-value store scoped to (plugin, tenant): other plugins and tenants never see it.
//
// Values are bytes (`Uint8Array`; strings are stored as UTF-8); `getJson` / `setJson` store
// JSON, `getText` reads UTF-8. `ttlMs` expires a value after that many milliseconds.
// `compareAndSwap(key, undefined, '1')` is "insert if absent": of concurrent callers exactly
// one gets `true`, which makes it the tool for doing a side effect once per idempotency key.
//
// Errors throw a `KvError`; only an unavailable store retries the delivery when uncaught (a
// full quota or an oversized value fails the same way on the next attempt).

import * as wit from 'wasmhook:plugin/kv@0.1.1';
import { Fail, Retry } from './errors.js';

/** A refused key-value operation; `kind` is `invalid-key`, `too-large`, `quota-exceeded` or `unavailable`. */
export class KvError extends Error {
  constructor(kind, detail) {
    super(`kv ${kind}: ${detail}`);
    this.name = 'KvError';
    this.kind = kind;
  }

  get transient() {
    return this.kind === 'unavailable';
  }

  handlerError() {
    return this.transient ? new Retry(this.message) : new Fail(this.message);
  }
}

function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e && e.payload && typeof e.payload.tag === 'string') {
      throw new KvError(e.payload.tag, e.payload.val);
    }
    throw e;
  }
}

function bytes(value) {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return new TextEncoder().encode(value);
  throw new TypeError(`kv values are Uint8Array or string, not ${typeof value}`);
}

function ttl(ttlMs) {
  return ttlMs === undefined ? undefined : BigInt(ttlMs);
}

/** The bytes stored under `key`, or `undefined` when absent or expired. */
export function get(key) {
  return call(wit.get, key) ?? undefined;
}

/** The value under `key` as UTF-8 text, or `undefined`. */
export function getText(key) {
  const value = get(key);
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

/** Stores `value` (Uint8Array or string) under `key`, replacing any earlier value. */
export function set(key, value, ttlMs) {
  call(wit.set, key, bytes(value), ttl(ttlMs));
}

/** Removes `key`; removing an absent key is not an error. */
export function del(key) {
  call(wit.delete, key);
}

/**
 * Atomically replaces the value under `key` with `desired` (`undefined` deletes it) if the
 * current value equals `expected` (`undefined` = absent). Returns whether it swapped.
 */
export function compareAndSwap(key, expected, desired, ttlMs) {
  return call(wit.compareAndSwap, key, bytes(expected), bytes(desired), ttl(ttlMs));
}

/** The JSON value under `key`, or `undefined`. A value that is not JSON throws `Fail`. */
export function getJson(key) {
  const text = getText(key);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Fail(`kv value \`${key}\` is not JSON: ${e.message}`);
  }
}

/** Stores `value` as JSON under `key`. */
export function setJson(key, value, ttlMs) {
  set(key, JSON.stringify(value), ttlMs);
}
