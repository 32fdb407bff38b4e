// The host's outbound API client.
//
//   const pipelines = api.getCached('highlevel', '/opportunities/pipelines', { query: { locationId } });
//   api.post('highlevel', `/contacts/${id}/tasks`, { json: { title: 'Call back' } });
//
// `get`, `post`, `put`, `patch` and `del` send one request and return the answer's body parsed
// as JSON (`null` when it is empty); `send(request)` returns the whole `Response`. A request that
// does not end in a 2xx throws an `ApiError` subclass, one per WIT `api-error` case. The host
// adds credentials, the `Version` and idempotency headers, paces requests per tenant, retries
// 429, 5xx, timeouts and connection errors within the delivery's time (unless `retry: false`),
// and checks every request against the manifest's `[capabilities.api.<name>]` allow-list first.
//
// Since WIT 0.1.1: `pages` / `items` walk list endpoints, `getCached` reads reference data
// through the host's cache, `batch` sends several requests at once and `bulkTags` tags many
// contacts in one call. HighLevel has no field selection: read only the fields you need.

import * as wit from 'wasmhook:plugin/api@0.1.1';
import { Fail, Retry } from './errors.js';

/** How much of an error body goes into an error's message (and so into handler reasons). */
const BODY_EXCERPT_CHARS = 200;

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

const PAGE_STYLES = [
  'start-after',
  'page',
  'skip',
  'offset',
  'search-page',
  'search-after',
  'last-message-id',
];

// ---- errors ------------------------------------------------------------------------------

/**
 * A request that did not produce a 2xx response. `transient` says whether another attempt of
 * the delivery could succeed; `handlerError()` is what an uncaught one becomes.
 */
export class ApiError extends Error {
  get transient() {
    return false;
  }

  handlerError() {
    return this.transient ? new Retry(this.message) : new Fail(this.message);
  }
}

/** An error answer from the API: `status` and raw `body` (a Uint8Array). */
class HttpError extends ApiError {
  constructor(label, failure) {
    const body = failure.body instanceof Uint8Array ? failure.body : new Uint8Array(failure.body);
    super(`api ${label} (status ${failure.status})${excerpt(body)}`);
    this.name = this.constructor.name;
    this.status = failure.status;
    this.body = body;
  }

  text() {
    return new TextDecoder().decode(this.body);
  }

  /** The error body parsed as JSON (e.g. HighLevel's `message`); `null` if it is not JSON. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch {
      return null;
    }
  }
}

/** Outside the plugin's capabilities; nothing was sent. `rule` says which. */
export class Denied extends ApiError {
  constructor(rule) {
    super(`api request denied: ${rule}`);
    this.name = 'Denied';
    this.rule = rule;
  }
}

/** 400, 404, 422 and other 4xx: the request is wrong; the same request fails again. */
export class ClientError extends HttpError {
  constructor(failure) {
    super('client error', failure);
  }
}

/**
 * 401 after one token refresh, or 403: the installation may need re-authorisation (a human
 * step); retried with the host's backoff so `max_attempts` still ends in an alert.
 */
export class AuthError extends HttpError {
  constructor(failure) {
    super('authorisation failed', failure);
  }

  get transient() {
    return true;
  }
}

/** 429 after the host's waits. */
export class RateLimited extends HttpError {
  constructor(failure) {
    super('rate limited', failure);
  }

  get transient() {
    return true;
  }
}

/** 5xx after the host's retries. */
export class ServerError extends HttpError {
  constructor(failure) {
    super('server error', failure);
  }

  get transient() {
    return true;
  }
}

/** No answer within the per-request timeout. */
export class Timeout extends ApiError {
  constructor() {
    super('api request timed out');
    this.name = 'Timeout';
  }

  get transient() {
    return true;
  }
}

/** The connection failed (DNS, refused, reset, TLS). */
export class TransportError extends ApiError {
  constructor(reason) {
    super(`api connection failed: ${reason}`);
    this.name = 'TransportError';
    this.reason = reason;
  }

  get transient() {
    return true;
  }
}

/**
 * The delivery's time ran out before the host's retry schedule finished: uncaught, it becomes
 * `Retry` after `retryAfterMs`.
 */
export class BudgetExhausted extends ApiError {
  constructor(retryAfterMs) {
    const ms = Number(retryAfterMs);
    super(`api retries need more time than the delivery has left; retry in ${ms} ms`);
    this.name = 'BudgetExhausted';
    this.retryAfterMs = ms;
  }

  get transient() {
    return true;
  }

  handlerError() {
    return new Retry(this.message, this.retryAfterMs);
  }
}

/** The `json` body could not be serialised; nothing was sent. (Detected by the SDK.) */
export class InvalidBody extends ApiError {
  constructor(reason) {
    super(`api request body is not valid JSON: ${reason}`);
    this.name = 'InvalidBody';
  }
}

function excerpt(body) {
  let text = new TextDecoder().decode(body).split(/\s+/).filter(Boolean).join(' ');
  if (!text) return '';
  if (text.length > BODY_EXCERPT_CHARS) text = `${text.slice(0, BODY_EXCERPT_CHARS)}…`;
  return `: ${text}`;
}

/** The `ApiError` for a WIT `api-error` value (`{ tag, val }`). */
function apiError(e) {
  switch (e.tag) {
    case 'denied':
      return new Denied(e.val);
    case 'client-error':
      return new ClientError(e.val);
    case 'auth':
      return new AuthError(e.val);
    case 'rate-limited':
      return new RateLimited(e.val);
    case 'server-error':
      return new ServerError(e.val);
    case 'timeout':
      return new Timeout();
    case 'transport':
      return new TransportError(e.val);
    case 'budget-exhausted':
      return new BudgetExhausted(e.val);
    default:
      return new TransportError(`unknown api error ${JSON.stringify(e.tag)}`);
  }
}

/** Calls a WIT import that returns `result`, turning its error into an `ApiError`. */
function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e && e.payload && typeof e.payload.tag === 'string') throw apiError(e.payload);
    throw e;
  }
}

// ---- requests and responses --------------------------------------------------------------

/** A 2xx answer: `status`, `headers` (`[name, value]` pairs, names lower case), `body`. */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body instanceof Uint8Array ? body : new Uint8Array(body);
  }

  /** The first value of header `name` (any case), or `undefined`. */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n === lower)?.[1];
  }

  text() {
    return new TextDecoder().decode(this.body);
  }

  /** The body parsed as JSON; `null` when empty. A body that is not JSON throws `Fail`. */
  json() {
    const text = this.text();
    if (!text.trim()) return null;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Fail(`api response body is not JSON: ${e.message}`);
    }
  }
}

function response(r) {
  return new Response(r.status, r.headers, r.body);
}

/**
 * A request to the API named `api` in the host config (`[apis.<name>]`).
 *
 * `path` is below the API's base URL (one leading `/`, no query string, no `.`/`..`). Options:
 * `query` (an object or `[name, value]` pairs; values become text, the host percent-encodes
 * them), `json` (any JSON-serialisable body), `headers` (extra headers the host allows, e.g.
 * `accept`), `retry: false` (send once, whatever happens).
 */
export class Request {
  constructor(api, method, path, { query, json, headers, retry = true } = {}) {
    const upper = String(method).toUpperCase();
    if (!METHODS.includes(upper)) {
      throw new TypeError(`method must be one of ${METHODS.join(', ')}, not ${method}`);
    }
    this.api = api;
    this.method = upper;
    this.path = path;
    this.query = query;
    this.json = json;
    this.headers = headers;
    this.retry = retry;
  }

  /** The WIT record the host receives. */
  toWit() {
    let body;
    if (this.json !== undefined) {
      try {
        body = JSON.stringify(this.json);
      } catch (e) {
        throw new InvalidBody(e.message);
      }
      if (body === undefined) throw new InvalidBody(`${typeof this.json} is not a JSON value`);
    }
    return {
      api: this.api,
      method: this.method.toLowerCase(),
      path: this.path,
      query: pairs(this.query),
      body,
      retry: this.retry ? undefined : 'never',
      headers: pairs(this.headers),
    };
  }
}

function pairs(mapping) {
  if (!mapping) return [];
  const entries = Array.isArray(mapping) ? mapping : Object.entries(mapping);
  return entries.map(([k, v]) => [String(k), String(v)]);
}

/** Sends `request` through the host (with its retries) and returns the `Response`. */
export function send(request) {
  return response(call(wit.send, request.toWit()));
}

/** `GET path`; the answer parsed as JSON. */
export function get(api, path, options = {}) {
  return send(new Request(api, 'GET', path, { ...options, json: undefined })).json();
}

/** `POST path` with `options.json` as the body; the answer parsed as JSON. */
export function post(api, path, options = {}) {
  return send(new Request(api, 'POST', path, options)).json();
}

/** `PUT path` with `options.json` as the body; the answer parsed as JSON. */
export function put(api, path, options = {}) {
  return send(new Request(api, 'PUT', path, options)).json();
}

/** `PATCH path` with `options.json` as the body; the answer parsed as JSON. */
export function patch(api, path, options = {}) {
  return send(new Request(api, 'PATCH', path, options)).json();
}

/** `DELETE path` (`delete` is a keyword); the answer parsed as JSON. */
export function del(api, path, options = {}) {
  return send(new Request(api, 'DELETE', path, { ...options, json: undefined })).json();
}

// ---- budget savers (WIT 0.1.1) -----------------------------------------------------------

/**
 * A GET through the host's reference-data cache: a fresh answer to the same request for the
 * same tenant comes back without an API call; otherwise it is sent and kept for the host's TTL.
 * For data that changes rarely: pipelines, calendars, custom fields, users. Counts as one call
 * against `max_api_calls` even when the cache answers. Returns the parsed JSON.
 */
export function getCached(api, path, options = {}) {
  const request = new Request(api, 'GET', path, { ...options, json: undefined });
  return response(call(wit.getCached, request.toWit())).json();
}

/**
 * The `cursor` page style: the query parameter `param` is set from the answer's `field` (top
 * level, in `meta`, or at a JSON pointer when it starts with `/`).
 */
export function cursor(param, field) {
  return { tag: 'cursor', val: { param, field } };
}

function pageStyle(style) {
  if (style && style.tag === 'cursor') return style;
  if (!PAGE_STYLES.includes(style)) {
    throw new TypeError(`page style must be cursor(...) or one of ${PAGE_STYLES.join(', ')}, not ${style}`);
  }
  return { tag: style };
}

/**
 * Yields the `Response` of each page of `request`, fetching at most `maxPages` (the host may
 * lower it). `style` is one of `start-after`, `page`, `skip`, `offset`, `search-page`,
 * `search-after`, `last-message-id`, or `cursor(param, field)`. Each page is one API call; the
 * first failing page throws its `ApiError` and ends the walk.
 */
export function* pages(request, style = 'start-after', maxPages = 10) {
  const walk = new wit.Pages(request.toWit(), pageStyle(style), maxPages);
  try {
    for (;;) {
      const page = walk.next();
      if (page === undefined || page === null) return;
      if (page.tag === 'err') throw apiError(page.val);
      yield response(page.val);
    }
  } finally {
    // Frees the walk in the host now rather than when the instance ends.
    if (typeof Symbol.dispose === 'symbol' && walk[Symbol.dispose]) walk[Symbol.dispose]();
  }
}

/**
 * Yields the items of every page: the array at JSON pointer `pointer` (e.g. `/contacts`) of
 * each page body. A page without an array there throws `Fail`.
 */
export function* items(request, pointer, style = 'start-after', maxPages = 10) {
  for (const page of pages(request, style, maxPages)) {
    const found = atPointer(page.json(), pointer);
    if (!Array.isArray(found)) throw new Fail(`the page has no item array at \`${pointer}\``);
    yield* found;
  }
}

/** The value at JSON pointer `pointer` (RFC 6901) in `doc`, or `undefined`. */
export function atPointer(doc, pointer) {
  if (pointer === '') return doc;
  if (!pointer.startsWith('/')) throw new TypeError(`a JSON pointer starts with /: ${pointer}`);
  let node = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, token)) return undefined;
    node = node[token];
  }
  return node;
}

/**
 * Sends several requests at once under the tenant's pacing and returns, in order, a
 * `Response` or an `ApiError` (returned, not thrown) per request. Each counts against
 * `max_api_calls`; a request whose body cannot be serialised is reported in its place.
 */
export function batch(requests) {
  const slots = [];
  const sendable = [];
  for (const request of requests) {
    try {
      sendable.push(request.toWit());
      slots.push(undefined);
    } catch (e) {
      if (!(e instanceof InvalidBody)) throw e;
      slots.push(e);
    }
  }
  const answers = sendable.length ? wit.sendBatch(sendable) : [];
  let next = 0;
  return slots.map((local) => {
    if (local !== undefined) return local;
    const answer = answers[next++];
    if (answer === undefined) return new TransportError('the host returned too few results');
    return answer.tag === 'ok' ? response(answer.val) : apiError(answer.val);
  });
}

/**
 * One `POST /contacts/bulk/tags/update/{add|remove}` that adds or removes `tags` on all
 * `contacts` of `locationId` (the event's tenant): one call instead of one per contact. The
 * manifest must allow `POST /contacts/bulk/tags/update/*`. Returns the parsed answer.
 */
export function bulkTags(api, locationId, contacts, tags, action = 'add') {
  if (action !== 'add' && action !== 'remove') {
    throw new TypeError(`action must be 'add' or 'remove', not ${action}`);
  }
  const json = { locationId, ids: [...contacts], tags: [...tags] };
  return post(api, `/contacts/bulk/tags/update/${action}`, { json });
}
