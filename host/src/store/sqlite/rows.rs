//! Conversions between SQLite rows and the store's types, shared by the writer and the readers.
//!
//! Column orders are part of each helper's contract and are spelled out in its doc; the queries
//! that use a helper select exactly those columns in that order.

use std::time::Duration;

use rusqlite::{
    Row,
    types::{FromSqlError, Type},
};

use crate::{
    ids::{DeliveryId, EventId, PluginName, SourceName, TenantId},
    store::{AttemptRecord, DeliveryRecord, DeliveryState, LogLine, StoredEvent},
};

/// A duration in whole milliseconds, saturating (a lease of `Duration::MAX` never expires).
pub(super) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Parses a stored state name.
pub(super) fn parse_state(text: &str) -> Option<DeliveryState> {
    match text {
        "pending" => Some(DeliveryState::Pending),
        "running" => Some(DeliveryState::Running),
        "succeeded" => Some(DeliveryState::Succeeded),
        "dead" => Some(DeliveryState::Dead),
        _ => None,
    }
}

/// A conversion failure of column `index`, in rusqlite's terms so that it carries the column.
fn bad_column(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        Type::Text,
        Box::new(FromSqlError::Other(what.into())),
    )
}

/// An event from the columns `source, id, kind, tenant, received_at_ms, payload`, starting at
/// column `at`.
pub(super) fn event_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        source: SourceName::new(row.get::<_, String>(at)?),
        id: EventId::new(row.get::<_, String>(at + 1)?),
        kind: row.get(at + 2)?,
        tenant: TenantId::new(row.get::<_, String>(at + 3)?),
        received_at_ms: row.get(at + 4)?,
        payload: row.get(at + 5)?,
    })
}

/// The columns [`delivery_from_row`] reads, for `SELECT {DELIVERY_COLUMNS} FROM deliveries`.
pub(super) const DELIVERY_COLUMNS: &str = "id, plugin, source, event_id, tenant, state, attempts_made, max_attempts, due_at_ms, \
     ordering_key, note";

/// A delivery (without attempts) from [`DELIVERY_COLUMNS`].
pub(super) fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state: String = row.get(5)?;
    let state = parse_state(&state)
        .ok_or_else(|| bad_column(5, format!("unknown delivery state `{state}`")))?;
    Ok(DeliveryRecord {
        id: DeliveryId::new(row.get::<_, String>(0)?),
        plugin: PluginName::new(row.get::<_, String>(1)?),
        source: SourceName::new(row.get::<_, String>(2)?),
        event_id: EventId::new(row.get::<_, String>(3)?),
        tenant: TenantId::new(row.get::<_, String>(4)?),
        state,
        attempts_made: row.get(6)?,
        max_attempts: row.get(7)?,
        due_at_ms: row.get(8)?,
        ordering_key: row.get(9)?,
        note: row.get(10)?,
        attempts: Vec::new(),
    })
}

/// An attempt from the columns `attempt, started_at_ms, finished_at_ms, outcome, error, logs`.
pub(super) fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    let logs: String = row.get(5)?;
    let logs: Vec<LogLine> = serde_json::from_str(&logs)
        .map_err(|err| bad_column(5, format!("attempt logs are not valid JSON: {err}")))?;
    Ok(AttemptRecord {
        attempt: row.get(0)?,
        started_at_ms: row.get(1)?,
        finished_at_ms: row.get(2)?,
        outcome: row.get(3)?,
        error: row.get(4)?,
        logs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips() {
        for state in [
            DeliveryState::Pending,
            DeliveryState::Running,
            DeliveryState::Succeeded,
            DeliveryState::Dead,
        ] {
            assert_eq!(parse_state(state.as_str()), Some(state));
        }
        assert_eq!(parse_state("paused"), None);
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_ms(Duration::MAX), i64::MAX);
    }

    #[test]
    fn corrupt_logs_name_the_column() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let err = conn
            .query_row(
                "SELECT 1, 2, 3, 'ok', NULL, 'not json'",
                [],
                attempt_from_row,
            )
            .expect_err("logs are not JSON");
        assert!(
            matches!(err, rusqlite::Error::FromSqlConversionFailure(5, ..)),
            "{err:?}"
        );
    }
}
