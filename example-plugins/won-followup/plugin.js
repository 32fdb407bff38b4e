// won-followup: when a deal is won, creates one follow-up task on its contact, assigned to the
// deal's owner and due a few days later: the hand-off from sales to onboarding.
//
// Per won deal it makes one API call, `POST /contacts/{contactId}/tasks`. A deal can be marked
// won more than once (won -> open -> won, or a repeated webhook with a new id), so the handler
// claims the deal in kv first: the first delivery to claim it creates the task; a retry of that
// same delivery (its claim holds its idempotency key) creates it again only if the earlier
// attempt failed before the host recorded success, and the host sends the same idempotency key
// upstream then.

import { api, config, handler, highlevel, kv, log } from 'wasmhook';

const API = 'highlevel';
const DAY_MS = 24 * 60 * 60 * 1000;
// How long a claim outlives the deal's win: long after any redelivery.
const CLAIM_TTL_MS = 90 * DAY_MS;

export const handle = handler((event, delivery) => {
  if (event.kind !== 'OpportunityStatusUpdate') return;
  const deal = highlevel.opportunity(event);
  if (deal.status !== 'won') {
    log.debug('deal not won', { status: deal.status });
    return;
  }
  if (!deal.contactId) {
    log.warn('won deal has no contact; no task to create', { opportunity: deal.id });
    return;
  }

  const claim = `followup:${deal.id}`;
  if (!kv.compareAndSwap(claim, undefined, delivery.idempotencyKey, CLAIM_TTL_MS)) {
    if (kv.getText(claim) !== delivery.idempotencyKey) {
      log.info('follow-up already created for this deal', { opportunity: deal.id });
      return;
    }
  }

  const dueInDays = Number(config.get('due_in_days', '3'));
  if (!Number.isFinite(dueInDays) || dueInDays < 0) {
    throw new TypeError(`config due_in_days must be a number of days, not ${config.get('due_in_days')}`);
  }
  const title = config.get('title', 'Onboarding call: {deal}').replaceAll('{deal}', deal.name ?? 'won deal');
  const task = {
    title,
    body: `Won ${deal.name ?? 'a deal'}${deal.monetaryValue != null ? ` worth ${deal.monetaryValue}` : ''}.`,
    dueDate: new Date(Date.now() + dueInDays * DAY_MS).toISOString(),
    completed: false,
  };
  if (deal.assignedTo) task.assignedTo = deal.assignedTo;

  const created = api.post(API, `/contacts/${deal.contactId}/tasks`, { json: task });
  log.info('created follow-up task', { opportunity: deal.id, contact: deal.contactId, task: created?.task?.id ?? '' });
});
