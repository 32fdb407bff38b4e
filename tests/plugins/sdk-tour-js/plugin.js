// sdk-tour (JavaScript): walks the SDK calls the example plugin does not make, so a test can
// check each against the real host: items over pages, a batch with a request the SDK refuses, a
// bulk tag call, kv JSON and the whole config table.

import { api, config, Fail, handler, kv, log } from 'wasmhook';

const API = 'highlevel';

export const handle = handler((event, delivery) => {
  const { tag } = config.all();
  const contacts = new api.Request(API, 'GET', '/contacts', { query: { locationId: event.tenant } });
  const ids = [...api.items(contacts, '/contacts', 'start-after', 3)].map((c) => c.id);

  const requests = ids.map((id) => new api.Request(API, 'GET', `/contacts/${id}`));
  requests.push(new api.Request(API, 'POST', '/contacts/x/notes', { json: { bad: 1n } }));
  const results = api.batch(requests);
  const fetched = results.filter((r) => r instanceof api.Response).map((r) => r.json().contact.id);
  const errors = results.filter((r) => r instanceof api.ApiError).map((r) => r.name);

  api.bulkTags(API, event.tenant, ids, [tag]);

  kv.setJson('seen', { ids }, 60_000);
  if (JSON.stringify(kv.getJson('seen')) !== JSON.stringify({ ids })) {
    throw new Fail('kv did not give back what was stored');
  }
  const swapped = kv.compareAndSwap('once', undefined, delivery.idempotencyKey);

  log.info('tour done', {
    items: ids.join(','),
    fetched: fetched.join(','),
    errors: errors.join(','),
    swapped: swapped ? 'True' : 'False',
  });
});
