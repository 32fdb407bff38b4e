// Structured logging into the host's log; the host tags each line with the plugin, event,
// delivery and tenant and keeps it with the attempt (`wasmhook deliveries show`).
//
//   log.info('created task', { contact: contactId, due });
//
// Field values are turned into text. The host caps lines per delivery and drops the rest, so
// log decisions, not loops; never log secrets or personal data you do not need. `console.log`
// also reaches the host's log, as plain lines.

import { write as witWrite } from 'wasmhook:plugin/log@0.1.1';

/** Writes one line at `level` (`trace`, `debug`, `info`, `warn` or `error`) with fields. */
export function write(level, message, fields = {}) {
  witWrite(level, String(message), Object.entries(fields).map(([k, v]) => [k, String(v)]));
}

export const trace = (message, fields) => write('trace', message, fields);
export const debug = (message, fields) => write('debug', message, fields);
export const info = (message, fields) => write('info', message, fields);
export const warn = (message, fields) => write('warn', message, fields);
export const error = (message, fields) => write('error', message, fields);
