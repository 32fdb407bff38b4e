// The plugin's own `[config]` table from its manifest (`name.toml`).
//
// `get` returns strings as they are and other values (numbers, booleans, arrays, tables) as
// JSON text, as the host hands them over; `all()` returns the whole table as an object with
// its TOML types. The table is fixed for the plugin version, so a missing or malformed value
// throws `Fail`.

import * as wit from 'wasmhook:plugin/config@0.1.1';
import { Fail } from './errors.js';

let table;

/** The value of top-level key `key` as text, or `fallback` when absent. */
export function get(key, fallback = undefined) {
  return wit.get(key) ?? fallback;
}

/** The value of `key` as text; `Fail` naming the key when it is absent. */
export function require(key) {
  const value = wit.get(key);
  if (value === undefined || value === null) {
    throw new Fail(`config: \`${key}\` is missing from the manifest's [config]`);
  }
  return value;
}

/** The whole `[config]` table as an object (read once per delivery). */
export function all() {
  if (table === undefined) {
    try {
      table = JSON.parse(wit.all());
    } catch (e) {
      throw new Fail(`config: the host's table is not JSON: ${e.message}`);
    }
  }
  return table;
}
