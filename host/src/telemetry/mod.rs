//! Telemetry (being written).
