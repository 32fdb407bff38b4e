//! Ingest on PostgreSQL: the event and its deliveries in one transaction.
//!
//! Invariants:
//! - The event goes in with `INSERT ... ON CONFLICT (source, id) DO NOTHING RETURNING`: the
//!   primary key, not a prior read, decides what is a duplicate, so two replicas receiving the
//!   same webhook at once store it once (the second waits on the key, then inserts nothing).
//! - The deliveries are written in the same transaction, so an acknowledged event always has
//!   them, and a duplicate writes none.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use crate::{
    ids::{DeliveryId, PluginName},
    store::{IngestOutcome, NewDelivery, NewEvent, StoreError, StoreOptions, ordering},
};

/// An ingest with what is computed off the database: the payload's hash, each delivery's
/// ordering key and id.
pub(super) struct Prepared {
    pub event: NewEvent,
    pub payload_sha256: String,
    /// (id, plugin, max_attempts, ordering key value)
    pub deliveries: Vec<(DeliveryId, PluginName, u32, Option<String>)>,
    /// Store the payload dropped at once (no subscriber, and payloads are not kept).
    pub drop_payload: bool,
}

impl Prepared {
    pub(super) fn new(
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        options: &StoreOptions,
    ) -> Prepared {
        let payload_sha256 = hex::encode(Sha256::digest(&event.payload));
        let pointers: Vec<Option<&str>> = deliveries
            .iter()
            .map(|d| d.ordering_key.as_deref())
            .collect();
        let keys = ordering::resolve(&event.payload, &pointers);
        let drop_payload = deliveries.is_empty() && !options.keep_payloads;
        let deliveries = deliveries
            .into_iter()
            .zip(keys)
            .map(|(d, key)| (DeliveryId::generate(), d.plugin, d.max_attempts, key))
            .collect();
        Prepared {
            event,
            payload_sha256,
            deliveries,
            drop_payload,
        }
    }
}

pub(super) async fn ingest(
    client: &mut deadpool_postgres::Object,
    event: NewEvent,
    deliveries: Vec<NewDelivery>,
    options: &StoreOptions,
) -> Result<IngestOutcome, StoreError> {
    let prepared = Prepared::new(event, deliveries, options);
    let tx = client.transaction().await?;
    let outcome = insert(&tx, prepared).await?;
    if outcome != IngestOutcome::Duplicate {
        tx.commit().await?;
    }
    Ok(outcome)
}

/// Inserts the event and its deliveries inside the caller's transaction; `Duplicate` (and
/// nothing written) when (source, id) is stored.
pub(super) async fn insert(
    tx: &impl GenericClient,
    prepared: Prepared,
) -> Result<IngestOutcome, StoreError> {
    let Prepared {
        event,
        payload_sha256,
        deliveries,
        drop_payload,
    } = prepared;
    let payload: &[u8] = if drop_payload { &[] } else { &event.payload };
    let statement = tx
        .prepare_cached(
            "INSERT INTO events (source, id, kind, tenant, received_at_ms, payload,
                                 payload_sha256, payload_dropped_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     CASE WHEN $8 THEN wasmhook_now_ms() END)
             ON CONFLICT (source, id) DO NOTHING
             RETURNING 1",
        )
        .await?;
    let inserted = tx
        .query_opt(
            &statement,
            &[
                &event.source.as_str(),
                &event.id.as_str(),
                &event.kind,
                &event.tenant.as_str(),
                &event.received_at_ms,
                &payload,
                &payload_sha256,
                &drop_payload,
            ],
        )
        .await?
        .is_some();
    if !inserted {
        return Ok(IngestOutcome::Duplicate);
    }
    if deliveries.is_empty() {
        return Ok(IngestOutcome::Inserted {
            deliveries: Vec::new(),
        });
    }
    let mut ids = Vec::with_capacity(deliveries.len());
    let mut plugins = Vec::with_capacity(deliveries.len());
    let mut max_attempts = Vec::with_capacity(deliveries.len());
    let mut keys = Vec::with_capacity(deliveries.len());
    for (id, plugin, max, key) in deliveries {
        ids.push(id);
        plugins.push(plugin.into_string());
        max_attempts.push(i64::from(max));
        keys.push(key);
    }
    let id_texts: Vec<&str> = ids.iter().map(DeliveryId::as_str).collect();
    // One statement for all subscribers; WITH ORDINALITY keeps their order in `seq`.
    let statement = tx
        .prepare_cached(
            "INSERT INTO deliveries (id, source, event_id, plugin, tenant, state, attempts_made,
                                     max_attempts, attempt_budget, due_at_ms, created_at_ms,
                                     ordering_key)
             SELECT d.id, $1, $2, d.plugin, $3, 'pending', 0, d.max_attempts, d.max_attempts,
                    wasmhook_now_ms(), wasmhook_now_ms(), d.ordering_key
             FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[])
                  WITH ORDINALITY AS d(id, plugin, max_attempts, ordering_key, n)
             ORDER BY d.n",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &event.source.as_str(),
            &event.id.as_str(),
            &event.tenant.as_str(),
            &id_texts,
            &plugins,
            &max_attempts,
            &keys,
        ],
    )
    .await?;
    Ok(IngestOutcome::Inserted { deliveries: ids })
}
