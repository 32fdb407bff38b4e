// How a handler says an attempt did not succeed: throw `Retry` or `Fail`.
//
// Invariant: every error the SDK throws (`ApiError`, `KvError`, config and payload errors) is a
// `HandlerError` or has a `handlerError()`; `handler()` turns them into the WIT `handler-error`,
// so a handler may let them propagate.

/** Base of `Retry` and `Fail`; `reason` is kept with the attempt and shown to operators. */
export class HandlerError extends Error {
  constructor(reason) {
    super(String(reason));
    this.name = this.constructor.name;
    this.reason = String(reason);
  }

  handlerError() {
    return this;
  }
}

/**
 * A transient failure: the host runs the delivery again, up to the manifest's `max_attempts`,
 * after its backoff or after `afterMs` milliseconds when given.
 */
export class Retry extends HandlerError {
  constructor(reason, afterMs) {
    super(reason);
    if (afterMs !== undefined && !(Number.isInteger(afterMs) && afterMs >= 0)) {
      throw new TypeError(`afterMs must be a whole number of milliseconds >= 0, not ${afterMs}`);
    }
    this.afterMs = afterMs;
  }

  toWit() {
    const afterMs = this.afterMs === undefined ? undefined : BigInt(this.afterMs);
    return { tag: 'retry', val: { reason: this.reason, afterMs } };
  }
}

/** Retrying cannot help: the delivery is dead at once and operators are alerted. */
export class Fail extends HandlerError {
  toWit() {
    return { tag: 'fail', val: this.reason };
  }
}
