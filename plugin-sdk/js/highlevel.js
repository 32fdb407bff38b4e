// Typed records for the common HighLevel webhook kinds.
//
//   const opp = highlevel.opportunity(event);
//   if (opp.status === 'won') { ... }
//
// Each reader checks the event's kind (throwing `Fail` for another kind) and returns an object
// with the listed fields of the payload. Tolerant by design: extra fields are ignored (HighLevel
// adds fields without notice) and missing ones are `null`, so check what your handler relies
// on. `raw` keeps the whole payload for anything not listed. Each reader's `kinds` lists the
// kinds it reads (`highlevel.contact.kinds.includes(event.kind)`).

import { Fail } from './errors.js';

function reader(name, kinds, fields, from = (payload) => payload) {
  const read = (event) => {
    if (!kinds.includes(event.kind)) {
      throw new Fail(`highlevel.${name} reads ${kinds.join(', ')} events, not \`${event.kind}\``);
    }
    const payload = event.json();
    const source = from(payload) ?? {};
    const record = { raw: payload };
    for (const field of fields) record[field] = source[field] ?? null;
    return record;
  };
  read.kinds = Object.freeze([...kinds]);
  return read;
}

/**
 * @typedef {{id: ?string, locationId: ?string, firstName: ?string, lastName: ?string,
 *   email: ?string, phone: ?string, tags: ?string[], assignedTo: ?string, source: ?string,
 *   dateAdded: ?string, raw: object}} Contact
 * @type {(event: import('./event.js').Event) => Contact}
 */
export const contact = reader(
  'contact',
  ['ContactCreate', 'ContactUpdate', 'ContactDelete', 'ContactDndUpdate', 'ContactTagUpdate'],
  ['id', 'locationId', 'firstName', 'lastName', 'email', 'phone', 'tags', 'assignedTo', 'source', 'dateAdded'],
);

/**
 * `status` is `open`, `won`, `lost` or `abandoned`.
 * @typedef {{id: ?string, locationId: ?string, name: ?string, status: ?string,
 *   pipelineId: ?string, pipelineStageId: ?string, contactId: ?string, assignedTo: ?string,
 *   monetaryValue: ?number, source: ?string, dateAdded: ?string, raw: object}} Opportunity
 * @type {(event: import('./event.js').Event) => Opportunity}
 */
export const opportunity = reader(
  'opportunity',
  [
    'OpportunityCreate',
    'OpportunityUpdate',
    'OpportunityStatusUpdate',
    'OpportunityStageUpdate',
    'OpportunityAssignedToUpdate',
    'OpportunityMonetaryValueUpdate',
    'OpportunityDelete',
  ],
  ['id', 'locationId', 'name', 'status', 'pipelineId', 'pipelineStageId', 'contactId', 'assignedTo', 'monetaryValue', 'source', 'dateAdded'],
);

/**
 * The fields live under `appointment` in the payload; `locationId` is the event's.
 * @typedef {{id: ?string, locationId: ?string, calendarId: ?string, contactId: ?string,
 *   title: ?string, appointmentStatus: ?string, assignedUserId: ?string, startTime: ?string,
 *   endTime: ?string, raw: object}} Appointment
 * @type {(event: import('./event.js').Event) => Appointment}
 */
export const appointment = reader(
  'appointment',
  ['AppointmentCreate', 'AppointmentUpdate', 'AppointmentDelete'],
  ['id', 'locationId', 'calendarId', 'contactId', 'title', 'appointmentStatus', 'assignedUserId', 'startTime', 'endTime'],
  (payload) => ({ ...(payload.appointment ?? {}), locationId: payload.locationId }),
);

/**
 * `messageType` is e.g. `SMS` or `Email`; `direction` `inbound` or `outbound`.
 * @typedef {{locationId: ?string, contactId: ?string, conversationId: ?string,
 *   messageId: ?string, messageType: ?string, direction: ?string, body: ?string,
 *   status: ?string, dateAdded: ?string, raw: object}} Message
 * @type {(event: import('./event.js').Event) => Message}
 */
export const message = reader(
  'message',
  ['InboundMessage', 'OutboundMessage'],
  ['locationId', 'contactId', 'conversationId', 'messageId', 'messageType', 'direction', 'body', 'status', 'dateAdded'],
);

/**
 * INSTALL and UNINSTALL of the app, for a location or a company (agency).
 * @typedef {{appId: ?string, locationId: ?string, companyId: ?string, userId: ?string,
 *   installType: ?string, raw: object}} Install
 * @type {(event: import('./event.js').Event) => Install}
 */
export const install = reader(
  'install',
  ['INSTALL', 'UNINSTALL'],
  ['appId', 'locationId', 'companyId', 'userId', 'installType'],
);
